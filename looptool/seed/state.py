"""The seed graph's state and its run context (graph.py holds the nodes that read them).

`SeedState` is what the checkpointer keeps of one dialogue between nodes: ids and counters, never
messages (those are rows in the store). `AssistantTask` is what one assistant sample is sent
(`Send`). `SeedContext` is what every dialogue of a run works with but does not checkpoint (the
store, the settings, the agents' endpoints, the tools); it is given to each run as LangGraph's
runtime context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, TypedDict

from looptool.agents.assistant import Guidance
from looptool.config import SeedConfig
from looptool.serving.client import Endpoint
from looptool.store import Store


def _candidates(old: list[dict] | None, new: list[dict] | None) -> list[dict]:
    """Assistant samples of the pending turn accumulate; None clears them."""
    return [] if new is None else [*(old or []), *new]


class SeedState(TypedDict, total=False):
    dialogue_id: str
    index: int  # the dialogue's number in the run: with the seed it fixes scenario and tools
    n_turns: int  # user turns in the plan
    n_messages: int  # messages stored so far = index of the next one
    turn: int  # user turns spoken so far
    action: int  # assistant turns since the last user message
    candidates: Annotated[list[dict], _candidates]
    vote: str  # "accepted" | "third" (ask a third sample) | "masked"
    last: str  # kind of the last accepted assistant turn: "calls" | "text"
    outcome: str  # "" while running, then "done" | "dropped"
    error: str


class AssistantTask(TypedDict):
    """What one assistant sample needs (the payload of a `Send`)."""

    dialogue_id: str
    n_messages: int
    turn: int
    action: int
    k: int  # which sample: 0 and 1 in parallel, 2 when they disagree


@dataclass
class SeedContext:
    store: Store
    config: SeedConfig
    endpoints: dict[str, Endpoint]  # by agent: planner, user, assistant, tool
    guidance: Guidance
    tool_records: list[dict[str, Any]]
    seed: int
    count_tokens: Callable[[list[dict[str, Any]]], int]
    judge: Endpoint | None = None  # None: the judge's check (tier 2) is off
    today: str = field(default_factory=lambda: date.today().isoformat())  # the date the judge is told
