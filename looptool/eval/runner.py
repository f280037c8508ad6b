"""Ask a model many questions at once, score each answer, and store every result as it comes.

The suites (BFCL, held-out) turn their entries into `EvalItem`s: a prompt and a function that
scores the model's raw answer. This module only sends them, many requests in flight so the vLLM
server can batch, and writes one row per scored item. A run's id comes from the model and the
settings, so running the same evaluation again -- after a kill, or with more categories --
continues it: items already scored are not asked again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from looptool.concurrency import run_all
from looptool.serving.client import Endpoint, RequestRejected, acomplete, acomplete_prompt
from looptool.store import Store


@dataclass(frozen=True)
class Scored:
    """The verdict on one answer. `decoded` is what the answer was read as (kept for inspection)."""

    passed: bool
    decoded: Any = None
    error_type: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class EvalItem:
    """One question: as chat messages (the server applies its chat template), and -- when the
    policy's tokenizer is on this machine -- as prompt text rendered exactly as in training, which
    is then what gets sent."""

    id: str
    category: str
    messages: list[dict[str, Any]]
    score: Callable[[str], Scored]
    prompt: str | None = None


@dataclass
class EvalProgress:
    total: int
    already: int = 0  # scored by an earlier run
    done: int = 0  # scored in this run
    passed: int = 0  # of those scored in this run
    rejected: int = 0  # requests the server refused (counted as failed)
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return self.already + self.done


def result_row(item: EvalItem, output: str | None, scored: Scored, completion: Any = None) -> dict[str, Any]:
    return {
        "entry_id": item.id, "category": item.category, "output": output, "decoded": scored.decoded,
        "passed": scored.passed, "error_type": scored.error_type, "error": scored.error,
        "latency_ms": getattr(completion, "latency_ms", None),
        "prompt_tokens": getattr(completion, "prompt_tokens", None),
        "completion_tokens": getattr(completion, "completion_tokens", None),
    }  # fmt: skip


def score_safely(item: EvalItem, output: str) -> Scored:
    """A scoring bug must cost one item, loudly recorded, not the run."""
    try:
        return item.score(output)
    except Exception as exc:  # noqa: BLE001 - recorded on the row
        return Scored(False, None, "checker_error", f"{type(exc).__name__}: {exc}"[:500])


async def _ask_all(items: Sequence[EvalItem], store: Store, run_id: str, endpoint: Endpoint, model: str, *,
                   concurrency: int, max_tokens: int, temperature: float, progress: EvalProgress,
                   on_progress: Callable[[EvalProgress], None],
                   chat_template_kwargs: dict[str, Any] | None = None) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(item: EvalItem) -> None:
        async with gate:
            try:
                if item.prompt is not None:
                    completion = await acomplete_prompt(endpoint, item.prompt, model=model, max_tokens=max_tokens,
                                                        temperature=temperature)
                else:
                    completion = await acomplete(endpoint, item.messages, model=model, max_tokens=max_tokens,
                                                 temperature=temperature, chat_template_kwargs=chat_template_kwargs)
            except RequestRejected as exc:
                # The server cannot take this prompt (e.g. longer than its context): the model gave
                # no answer, so the item fails; the kind is kept so tables can show such items.
                progress.rejected += 1
                row = result_row(item, None, Scored(False, None, "inference_error:request_rejected", str(exc)))
            else:
                scored = await asyncio.to_thread(score_safely, item, completion.content)
                row = result_row(item, completion.content, scored, completion)
        await asyncio.to_thread(store.add_eval_results, run_id, [row])
        progress.done += 1
        progress.passed += int(row["passed"])
        on_progress(progress)

    await run_all(one(item) for item in items)


def run_items(items: Sequence[EvalItem], store: Store, run_id: str, endpoint: Endpoint, model: str, *,
              concurrency: int, max_tokens: int, temperature: float,
              on_progress: Callable[[EvalProgress], None] = lambda p: None,
              chat_template_kwargs: dict[str, Any] | None = None) -> EvalProgress:
    """Ask every item not yet scored in `run_id`, store the results, then refresh the run's scores.
    `chat_template_kwargs` go with items sent as chat messages (the server renders those)."""
    scored = store.scored_entry_ids(run_id)
    todo = [item for item in items if item.id not in scored]
    progress = EvalProgress(total=len(items), already=len(items) - len(todo))
    on_progress(progress)
    try:
        if todo:
            asyncio.run(_ask_all(todo, store, run_id, endpoint, model, concurrency=concurrency,
                                 max_tokens=max_tokens, temperature=temperature, progress=progress,
                                 on_progress=on_progress, chat_template_kwargs=chat_template_kwargs))  # fmt: skip
    finally:
        store.update_eval_scores(run_id)
    return progress

