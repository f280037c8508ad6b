"""Ask a model many questions at once, score each answer, and store every result as it comes.

The suites (BFCL, held-out) turn their entries into `EvalItem`s: a prompt and a function that
scores the model's raw answer, or -- for an item answered over several requests, such as a
multi-turn conversation -- a coroutine that converses with the model through an `Asker`. This
module only runs them, many items in flight so the vLLM server can batch, and writes one row per
scored item. A run's id comes from the model and the
settings, so running the same evaluation again -- after a kill, or with more categories --
continues it: items already scored are not asked again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from looptool.concurrency import run_all
from looptool.config import DB_FILE, WorkspaceConfig
from looptool.serving.client import Completion, Endpoint, RequestRejected, acomplete, acomplete_prompt
from looptool.store import Store

if TYPE_CHECKING:
    from pathlib import Path

    from looptool.serving.target import EvalTarget


@dataclass(frozen=True)
class Scored:
    """The verdict on one answer. `decoded` is what the answer was read as (kept for inspection)."""

    passed: bool
    decoded: Any = None
    error_type: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Asker:
    """The model a run asks and how (completion budget, temperature, template switches): one
    request of a run, as chat messages or as prompt text rendered like training's."""

    endpoint: Endpoint
    model: str
    max_tokens: int
    temperature: float
    chat_template_kwargs: dict[str, Any] | None = None

    async def __call__(self, messages: list[dict[str, Any]], prompt: str | None = None) -> Completion:
        """Send `prompt` when given (no chat template on the server), else the chat `messages`
        (`chat_template_kwargs` go with those, since the server renders them)."""
        if prompt is not None:
            return await acomplete_prompt(self.endpoint, prompt, model=self.model, max_tokens=self.max_tokens,
                                          temperature=self.temperature)
        return await acomplete(self.endpoint, messages, model=self.model, max_tokens=self.max_tokens,
                               temperature=self.temperature, chat_template_kwargs=self.chat_template_kwargs)


@dataclass(frozen=True)
class EvalItem:
    """One question: as chat messages (the server applies its chat template), and -- when the
    policy's tokenizer is on this machine -- as prompt text rendered exactly as in training, which
    is then what gets sent.

    An item answered over several requests has `converse` instead: given the run's `Asker`, it
    talks with the model and returns the answer to score as one `Completion` (its content the
    output text, its latency and token counts the totals of its requests). Its scoring runs on the
    event loop's thread, like its conversation, because both run tool calls on backends whose
    state is per process (see `BackendSession`)."""

    id: str
    category: str
    messages: list[dict[str, Any]]
    score: Callable[[str], Scored]
    prompt: str | None = None
    converse: Callable[[Asker], Awaitable[Completion]] | None = None


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


async def _ask_all(items: Sequence[EvalItem], store: Store, run_id: str, ask: Asker, *, concurrency: int,
                   progress: EvalProgress, on_progress: Callable[[EvalProgress], None]) -> None:
    gate = asyncio.Semaphore(concurrency)  # items in flight; a conversation's requests follow one another

    async def one(item: EvalItem) -> None:
        async with gate:
            try:
                completion = await (item.converse(ask) if item.converse else ask(item.messages, item.prompt))
            except RequestRejected as exc:
                # The server cannot take this prompt (e.g. longer than its context): the model gave
                # no answer, so the item fails; the kind is kept so tables can show such items.
                progress.rejected += 1
                row = result_row(item, None, Scored(False, None, "inference_error:request_rejected", str(exc)))
            else:
                if item.converse:
                    scored = score_safely(item, completion.content)
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
            ask = Asker(endpoint, model, max_tokens, temperature, chat_template_kwargs)
            asyncio.run(_ask_all(todo, store, run_id, ask, concurrency=concurrency, progress=progress,
                                 on_progress=on_progress))
    finally:
        store.update_eval_scores(run_id)
    return progress



def run_suite(workspace: Path, config: WorkspaceConfig, target: EvalTarget, suite: str, settings: dict[str, Any],
              items: Sequence[EvalItem], on_progress: Callable[[EvalProgress], None] = lambda p: None,
              ) -> tuple[str, EvalProgress]:
    """Record `target`'s run of `suite` under `settings` (its id comes from both) and ask every item
    not yet scored in it, with the workspace's [eval] settings; returns the run id and this call's progress."""
    from looptool.serving.target import chat_template_kwargs

    run_id = target.run_id(suite, settings)
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_eval_run(run_id, suite=suite, model=target.endpoint.model, adapter=target.adapter,
                              round=target.round, settings=settings)
        progress = run_items(items, store, run_id, target.endpoint, target.model,
                             concurrency=config.eval.concurrency, max_tokens=settings["max_tokens"],
                             temperature=config.eval.temperature, on_progress=on_progress,
                             chat_template_kwargs=chat_template_kwargs(config))
    return run_id, progress
