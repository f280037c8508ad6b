"""Shaping store rows into what the TUI's widgets show. No SQL here: rows come from `Store`
methods; these functions only compute and format (progress of a running stage, table cells,
plot series, the loop agents' calls), so they are cheap to test and safe to run on the UI thread."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from looptool.config import WorkspaceConfig
from looptool.display import short
from looptool.schema import EvalMetrics, Round, Verdict

WAITING_FOR_REVIEW = "waiting for review"  # the status shown while the review gate waits
STOPPED = "stopped"  # the status shown for a round whose row says running while no loop runs
WARM_START = "warm start (SFT)"  # the train stage while round 1's SFT warm start runs, before GRPO
# How each stage's progress is counted: the rows it writes, against the rows it will have written.
STAGE_UNITS = {"train": "steps", WARM_START: "steps", "probe": "probes", "verify": "verdicts", "expand": "attempts",
               "evaluate": "entries"}
UNIT_SINGULAR = {"steps": "step", "probes": "probe", "verdicts": "verdict", "attempts": "attempt", "entries": "entry"}


@dataclass(frozen=True)
class StageProgress:
    """Progress of the stage a round is in: done of total (None: unknown), rate per minute."""

    round: int
    stage: str
    status: str
    done: int | None
    total: int | None
    per_minute: float | None
    unit: str = ""

    @property
    def label(self) -> str:
        head = f"round {self.round} · {self.stage}"
        if self.status == WAITING_FOR_REVIEW:  # nothing runs: what to do, not a count
            return f"{head} · waiting for review: press 4 to review {self.done or 0} verdicts"
        if self.status == "paused":
            return f"{head} (paused after it as asked: s goes on from the next stage)"
        if self.status == STOPPED:
            return f"{head} (stopped: no loop runs; s starts it again from this stage)"
        if self.done is None or self.status != "running":
            return head if self.status in ("running", self.stage) else f"{head} ({self.status})"
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        return f"{head} · {count} {self.unit}{self.rate}"

    @property
    def rate(self) -> str:
        """' · 3.2 probes/min', or for work slower than one a minute (a training step on a CPU)
        ' · 2.5 min/step'; '' before the first is done."""
        if not self.per_minute:
            return ""
        if self.per_minute >= 1:
            return f" · {self.per_minute:.1f} {self.unit}/min"
        return f" · {1 / self.per_minute:.1f} min/{UNIT_SINGULAR.get(self.unit, self.unit)}"


def warm_start_running(info: Round, activity: dict[str, int], warm_start: bool) -> bool:
    """Whether the round's train stage is in its SFT warm start: the round running, no GRPO step yet,
    no finished SFT (its summary lands in the metrics), and either SFT steps logged or a warm start
    due (`warm_start`: round 1 of a policy that wants one, `training.sft.warm_start_wanted`)."""
    if (info.status != "running" or info.stage != "train" or activity.get("train_steps", 0)
            or info.metrics.sft is not None):
        return False
    return bool(activity.get("sft_steps", 0)) or warm_start


def current_round(rounds: Sequence[Round]) -> Round | None:
    """The round the loop is in: the running one, else the latest that has started."""
    running = [r for r in rounds if r.status == "running"]
    if running:
        return running[-1]
    started = [r for r in rounds if r.status != "pending"]
    return started[-1] if started else None


def expected_eval_entries(config: WorkspaceConfig, heldout_samples: int) -> int:
    """Entries a round's evaluation scores: the held-out samples plus the BFCL subset."""
    from looptool.eval.bfcl_suite import category_sizes

    total = heldout_samples
    categories = config.loop.bfcl_categories
    sizes = category_sizes() if categories else {}
    for category in categories:
        size = sizes[category]
        total += min(size, config.loop.eval_bfcl_limit) if config.loop.eval_bfcl_limit else size
    return total


def stage_progress(info: Round, activity: dict[str, int], config: WorkspaceConfig, now: datetime,
                   expected_eval: int | None = None, warm_start: bool = False) -> StageProgress:
    """How far the round's current stage is, from the rows it has written (see STAGE_UNITS), and
    its rate since the stage started (`metrics.stage_started`; GRPO's since the warm start
    finished, when there was one). The train stage of a round in
    its SFT warm start (`warm_start_running`) counts the warm start's steps, as WARM_START."""
    stage = info.stage or "-"
    done: int | None = None
    total: int | None = None
    if warm_start_running(info, activity, warm_start):
        stage, done, total = WARM_START, activity.get("sft_steps", 0), config.train.sft_max_steps
    elif stage == "train":
        done = activity.get("train_steps", 0)
        grpo = info.metrics.grpo or {}
        total = config.loop.grpo_steps or grpo.get("max_steps") or grpo.get("steps")
    elif stage == "probe":
        done, total = activity.get("probes", 0), len(info.data_ids)
    elif stage == "verify":
        done, total = activity.get("verdicts", 0), activity.get("failed", 0)
    elif stage == "expand":
        done, total = activity.get("expansions", 0), activity.get("errors", 0) * config.loop.expansions_per_error
    elif stage == "evaluate":
        done, total = activity.get("eval_results", 0), expected_eval
    per_minute = None
    started = info.metrics.stage_started
    sft = info.metrics.sft
    if stage == "train" and sft is not None and isinstance(sft.get("finished"), str):
        started = max(started or "", sft["finished"])  # GRPO's rate from its own start, not the warm start's
    if done is not None and started and info.status == "running":
        try:
            minutes = (now - datetime.fromisoformat(started)).total_seconds() / 60
        except ValueError:
            minutes = 0
        if minutes > 0:
            per_minute = done / minutes
    if total is not None and done is not None:
        total = max(total, done)
    return StageProgress(info.n, stage, info.status, done, total, per_minute, STAGE_UNITS.get(stage, ""))


# -- rounds -------------------------------------------------------------------------------------

# The verdict kinds in the order of the rounds table's "LW/PW/OK/BW" column.
VERDICT_ABBREV = {"LABEL_WRONG": "LW", "PRED_WRONG": "PW", "BOTH_OK": "OK", "BOTH_WRONG": "BW"}
ROUND_COLUMNS = ("round", "status", "stage", "time", "data", "m/b/f", "/".join(VERDICT_ABBREV.values()), "kept",
                 "heldout", "BFCL")
# The composition cell's width and short part names: with them, a round's row fits 120 columns even
# with thousands of probes and hundreds of verdicts (tests/tui check the widest row).
DATA_WIDTH = 23
PART_ABBREV = {"corrected": "cor", "error": "err", "both_ok": "ok", "expanded": "exp", "fresh_seed": "new",
               "boundary": "bnd", "seed": "seed", "repeated": "rep", "random_correct": "rnd"}


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def round_cells(info: Round, verdicts: dict[str, int] | None = None, *, stopped: bool = False) -> tuple[str, ...]:
    """One row of the rounds table; with `stopped` (no loop runs) a round stored as running shows
    as stopped: its row is not rewritten when the loop is killed."""
    m = info.metrics
    composition = m.composition or {}
    parts = " ".join(f"{PART_ABBREV.get(k, k)}{v}" for k, v in composition.items() if v)  # parts with none: left out
    data = short(f"{sum(composition.values())}: {parts}", DATA_WIDTH) if composition else "-"
    probe = m.probe
    probed = probe is not None and probe.model_fields_set  # (a probe figure with no key shows as none)
    probe_text = f"{probe.mastered}/{probe.boundary}/{probe.failed}" if probed else "-"
    verdict_text = "/".join(str(verdicts.get(k, 0)) for k in VERDICT_ABBREV) if verdicts else "-"
    expansion = m.expansion or {}
    kept = f"{expansion.get('kept', 0)}/{sum(expansion.values())}" if expansion else "-"
    seconds = sum((m.stage_seconds or {}).values())
    evaluation = m.eval or EvalMetrics()
    status = STOPPED if stopped and info.status == "running" else info.status
    return (str(info.n), status, info.stage or "-", _duration(seconds) if seconds else "-", data, probe_text,
            verdict_text, kept, _pct(evaluation.heldout), _pct((evaluation.bfcl or {}).get("all")))


def reward_series(steps: Iterable[dict[str, Any]]) -> tuple[list[float], list[int]]:
    """GRPO reward per logged step, numbered on across rounds, and the x where each round after
    the first begins."""
    rewards: list[float] = []
    starts: list[int] = []
    last_round = None
    for s in steps:
        if not isinstance(s.get("reward"), (int, float)):
            continue
        if last_round is not None and s["round"] != last_round:
            starts.append(len(rewards) + 1)
        last_round = s["round"]
        rewards.append(float(s["reward"]))
    return rewards, starts


def latest_eval_runs(rounds: Iterable[Round]) -> dict[str, tuple[int, str]]:
    """suite -> (round, run id) of the latest round whose evaluation stored a run of that suite."""
    latest: dict[str, tuple[int, str]] = {}
    for r in rounds:
        run_ids = (r.metrics.eval or EvalMetrics()).run_ids()
        for suite in ("heldout", "bfcl"):
            if isinstance(run_ids[suite], str):
                latest[suite] = (r.n, run_ids[suite])
    return latest


def accuracy_series(rounds: Iterable[Round], references: Sequence[Any] = ()) -> dict[str, list[tuple[float, float]]]:
    """Accuracy (percent) per evaluated round: held-out and the BFCL subset; first the base model
    (x 0) and the warm start (x 0.5) where `references` (report.Reference) measured them."""
    out: dict[str, list[tuple[float, float]]] = {"held-out": [], "BFCL": []}
    for ref in references:
        if ref.heldout is not None:
            out["held-out"].append((ref.x, 100 * ref.heldout))
        if isinstance(ref.bfcl.get("all"), (int, float)):
            out["BFCL"].append((ref.x, 100 * ref.bfcl["all"]))
    for r in rounds:
        evaluation = r.metrics.eval or EvalMetrics()
        if isinstance(evaluation.heldout, (int, float)):
            out["held-out"].append((r.n, 100 * evaluation.heldout))
        bfcl = (evaluation.bfcl or {}).get("all")
        if isinstance(bfcl, (int, float)):
            out["BFCL"].append((r.n, 100 * bfcl))
    return out


# -- calls, labels and verdicts -----------------------------------------------------------------


def other_answer(v: Verdict) -> str | None:
    """The override that picks the other answer of the two the judge compared, or None when that
    is the judge's own verdict (the override is then cleared): a verdict that keeps the label
    flips to taking the prediction (LABEL_WRONG) and back (PRED_WRONG)."""
    flipped = "PRED_WRONG" if v.effective == "LABEL_WRONG" else "LABEL_WRONG"
    return None if flipped == v.verdict else flipped


# -- the loop agents' calls (judge, expander) ----------------------------------------------------


@dataclass(frozen=True)
class CallGroup:
    """The recorded model calls made for one thing: a verdict, or one expansion attempt."""

    title: str
    calls: list[dict[str, Any]]


def usage_text(model: str | None, latency_ms: float | None, prompt_tokens: int | None,
               completion_tokens: int | None) -> str:
    """A call's usage as "model · 120 ms · 200+20 tok", leaving out what is not known."""
    parts = [model or ""]
    if latency_ms is not None:
        parts.append(f"{latency_ms:.0f} ms")
    if prompt_tokens is not None:
        parts.append(f"{prompt_tokens}+{completion_tokens or 0} tok")
    return " · ".join(p for p in parts if p)


def call_groups(calls: Iterable[dict[str, Any]], expansions: Sequence[dict[str, Any]] = ()) -> list[CallGroup]:
    """A sample's loop-agent calls (`Store.agent_calls`) grouped by subject, in the order they were
    made: "verdict · round R" for the judge's verdict, "expansion · round R · slot S · <dimension> ·
    <status>" for an expansion attempt (dimension and status from `Store.expansions_of`)."""
    attempts = {(str(e["round"]), str(e["slot"])): e for e in expansions}
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in calls:
        groups.setdefault(c["subject"], []).append(c)
    out = []
    for subject, rows in groups.items():
        kind, _, rest = subject.partition(":")
        parts = rest.split(":")  # the sample id, the round, and the slot of an expansion
        title = subject
        if kind == "verdict" and len(parts) == 2:
            title = f"verdict · round {parts[1]}"
        elif kind == "expansion" and len(parts) == 3:
            title = f"expansion · round {parts[1]} · slot {parts[2]}"
            attempt = attempts.get((parts[1], parts[2]))
            if attempt is not None:
                title += f" · {attempt['dimension']} · {attempt['status']}"
        # An expansion's check follows its expander calls, even when both were stored in the same millisecond.
        out.append(CallGroup(title, sorted(rows, key=lambda c: c["call_key"].startswith("check."))))
    return out
