"""A Markdown report of a loop workspace, with plots: does the loop beat the arms it is compared with?

`write_report(workspace)` reads the loop's workspace and every arm that was run beside it (loop/arms.py:
the static baseline at `workspace / "static"` -- the same GRPO steps per round on the whole seed
pool, without probing, verification or expansion -- and the ablations), and writes `report.md`
with PNG plots under `report/`:

* GRPO steps and signal: each arm's GRPO steps per round, the mean share of groups whose rewards
  were all equal (`frac_reward_zero_std`: such a group teaches nothing) and the mean reward.
* Loop vs each arm: held-out and BFCL-subset accuracy of every trained round, side by side, with
  the difference in percentage points -- only for an arm that spent the loop's GRPO steps in every
  round both trained; otherwise one line says why the two are not compared.
* Per round of the loop: data composition, probe categories, judge verdicts, expansion yield,
  held-out and BFCL accuracy per category, GRPO reward of the first and last logged step, the
  training summaries and the wall time of each stage. The same for the static baseline, less
  the stages it does not run. A pending round (the next round's data, not trained yet) shows
  its composition only.
* The base model (round 0) and the SFT warm start, which every arm starts from: the first rows of
  the evaluation and comparison tables and the first points of the accuracy plot, read from the
  loop workspace's `looptool eval` runs and counted on the entries of the latest evaluated round
  (a line says what a run lacks, or how to measure a model that was not).
* Plots: GRPO reward per step, accuracy per round, data composition, verdicts and expansion
  outcomes. Every plot is written even without data (it then says "no data yet"), so the
  report's links never break.

Everything is read through the Store; the report writes nothing to the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, get_args

from looptool.config import DB_FILE, load_config
from looptool.eval.acebench_suite import figures as acebench_figures
from looptool.eval.show import WARM_START_ADAPTER, is_base_run, is_warm_start_run
from looptool.loop.arms import LOOP, STATIC, existing_arms, static_workspace
from looptool.schema import ROUND_STAGES, EvalMetrics, VerdictKind
from looptool.stats import wilson_interval
from looptool.store import Store

PLOT_DIR = "report"
PLOTS = {  # file name -> caption, in the report's order
    "reward_per_step.png": "GRPO reward per step",
    "accuracy_per_round.png": "Accuracy per round",
    "data_composition.png": "Data composition per round",
    "verdicts.png": "Judge verdicts per round",
    "expansion_yield.png": "Expansion outcomes per round",
}
# Orders for columns and stacks; the stored dicts come back sorted by name.
COMPOSITION_PARTS = ("fresh_seed", "corrected", "error", "both_ok", "expanded", "repeated", "boundary",
                     "random_correct", "seed")
PROBE_CATEGORIES = ("mastered", "boundary", "failed")
VERDICT_KINDS: tuple[str, ...] = get_args(VerdictKind)
EXPANSION_STATUSES = ("kept", "invalid", "rejected", "duplicate")


@dataclass
class RoundData:
    """What one round trained on, found and scored."""

    n: int
    status: str
    composition: dict[str, int] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)  # category counts and "boundary_cut"
    verdicts: dict[str, int] = field(default_factory=dict)
    bases: dict[str, int] = field(default_factory=dict)  # how the verdicts were reached (Store.verdict_bases)
    expansion: dict[str, int] = field(default_factory=dict)  # attempts by status
    heldout: float | None = None
    bfcl: dict[str, float | None] = field(default_factory=dict)  # category -> accuracy; "all" overall
    acebench: dict[str, float | None] = field(default_factory=dict)  # category, "normal", "special", "all"
    heldout_run: str | None = None  # the evaluation runs the evaluate node stored
    bfcl_run: str | None = None
    acebench_run: str | None = None
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # suite -> (passed, total) over all entries
    training: dict[str, dict[str, Any]] = field(default_factory=dict)  # "sft" / "grpo" -> summary
    rewards: list[float] = field(default_factory=list)  # GRPO reward of each logged step, in order
    zero_std: list[float] = field(default_factory=list)  # frac_reward_zero_std of each logged step
    losses: list[float] = field(default_factory=list)  # GRPO loss of each logged step
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def steps(self) -> int | None:
        """The GRPO steps the round spent, as its training recorded them."""
        steps = self.training.get("grpo", {}).get("steps")
        return steps if isinstance(steps, int) and not isinstance(steps, bool) else None

    @property
    def trained(self) -> bool:
        # A pending round holds only the data assembled for it.
        return self.status != "pending"


@dataclass
class RunData:
    """One workspace's rounds: the loop's, or the static baseline's."""

    name: str
    model: str | None
    rounds: list[RoundData]
    arm: str = LOOP

    def trained_round(self, n: int) -> RoundData | None:
        return next((r for r in self.rounds if r.n == n and r.trained), None)


def collect(workspace: Path, arm: str = LOOP) -> RunData:
    """Read a workspace's rounds; not a workspace raises what every command raises (ConfigError)."""
    config = load_config(workspace)
    rounds = []
    with Store.open(workspace / DB_FILE) as store:
        for r in store.rounds():
            metrics, evaluation = r.metrics, r.metrics.eval or EvalMetrics()
            steps = store.train_steps(r.n, "grpo")
            rounds.append(RoundData(
                n=r.n, status=r.status,
                composition=dict(metrics.composition or {}),
                probe=metrics.probe.model_dump() if metrics.probe is not None else {},
                verdicts=store.verdict_counts(r.n),
                bases=store.verdict_bases(r.n),
                # The expansions table is the record; the metric is a copy written after the stage.
                expansion=store.expansion_counts(r.n) or dict(metrics.expansion or {}),
                heldout=evaluation.heldout,
                bfcl=dict(evaluation.bfcl or {}),
                acebench=dict(evaluation.acebench or {}),
                heldout_run=evaluation.heldout_run,
                bfcl_run=evaluation.bfcl_run,
                acebench_run=evaluation.acebench_run,
                counts=_run_counts(store, {s: evaluation.run_ids()[s] for s in SUITES}),
                training={k: v for k, v in (("sft", metrics.sft), ("grpo", metrics.grpo)) if v is not None},
                rewards=_step_values(steps, "reward"),
                zero_std=_step_values(steps, "frac_reward_zero_std"),
                losses=_step_values(steps, "loss"),
                stage_seconds=dict(metrics.stage_seconds or {}),
            ))
    return RunData(config.name, config.train.model or getattr(config.policy, "model", None), rounds, arm)


# -- the base model and the warm start -----------------------------------------------------------

BASE_LABEL, WARM_START_LABEL = "base (round 0)", "warm start"
SUITES = ("heldout", "bfcl", "acebench")


def _run_counts(store: Store, runs: dict[str, str | None]) -> dict[str, tuple[int, int]]:
    """suite -> (passed, total) of each stored run, for the intervals of the evaluation table."""
    out = {}
    for suite, run_id in runs.items():
        rows = store.eval_results(run_id) if run_id else []
        if rows:
            out[suite] = (sum(bool(r["passed"]) for r in rows), len(rows))
    return out


def fullest_run(store: Store, runs: Sequence[dict[str, Any]]) -> str | None:
    """The id of the run with the most scored items (the latest of equals), or None."""
    if not runs:
        return None
    return max(runs, key=lambda r: (len(store.scored_entry_ids(r["id"])), r["updated_at"]))["id"]


@dataclass
class Reference:
    """A model every arm starts from, measured in the loop's workspace by `looptool eval`: the base
    policy (round 0) or the SFT warm start. It is counted on the entries the loop's latest evaluated
    round was measured on, so that it compares with the rounds."""

    name: str
    x: float  # its place on the accuracy plot's round axis: 0 for the base, 0.5 for the warm start
    heldout: float | None = None
    bfcl: dict[str, float | None] = field(default_factory=dict)  # category -> accuracy; "all" overall
    acebench: dict[str, float | None] = field(default_factory=dict)  # as RoundData.acebench
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # suite -> (passed, total)
    notes: list[str] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return self.heldout is not None or bool(self.bfcl) or bool(self.acebench)


def collect_references(workspace: Path, loop: RunData) -> list[Reference]:
    """The base model and the warm start, from the loop workspace's stored evaluation runs."""
    latest: dict[str, tuple[int, str]] = {}
    for suite in SUITES:
        last = next((r for r in reversed(loop.rounds) if getattr(r, f"{suite}_run")), None)
        if last is not None:
            latest[suite] = (last.n, getattr(last, f"{suite}_run"))
    with Store.open(workspace / DB_FILE) as store:
        return reference_points(store, latest)


def reference_points(store: Store, latest: dict[str, tuple[int, str]]) -> list[Reference]:
    """The base model and the warm start from the stored evaluation runs, each suite counted on the
    entries of `latest[suite]` (round, run id: the latest evaluated round's run) where there is one."""
    refs = [Reference(BASE_LABEL, 0.0), Reference(WARM_START_LABEL, 0.5)]
    for ref, lookup in zip(refs, (is_base_run, is_warm_start_run)):
        for suite in SUITES:
            run_id = fullest_run(store, [r for r in store.eval_runs(suite) if lookup(r)])
            if run_id is None:
                continue
            rows = store.eval_results(run_id)
            if suite in latest:
                round_n, round_run = latest[suite]
                wanted = store.scored_entry_ids(round_run)
                rows = [r for r in rows if r["entry_id"] in wanted]
                if len(rows) < len(wanted):
                    ref.notes.append(f"{ref.name}'s {suite} run has {len(rows)} of the {len(wanted)} entries "
                                     f"round {round_n} was evaluated on; it is counted on those")
            accuracy = _accuracy_by_category(rows)
            if rows:
                ref.counts[suite] = (sum(bool(r["passed"]) for r in rows), len(rows))
            if suite == "heldout":
                ref.heldout = accuracy.get("all")
            elif suite == "bfcl":
                ref.bfcl = accuracy
            else:
                ref.acebench = acebench_figures(rows)
    return refs


def _accuracy_by_category(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """category -> accuracy, and "all" over every row (what a round's evaluation records)."""
    totals: dict[str, list[int]] = {}
    for r in rows:
        for key in (r["category"], "all"):
            counts = totals.setdefault(key, [0, 0])
            counts[0] += int(bool(r["passed"]))
            counts[1] += 1
    return {k: passed / total for k, (passed, total) in totals.items()}


def _step_values(steps: Sequence[dict[str, Any]], key: str) -> list[float]:
    """One metric of each logged step that has it, in order."""
    return [s[key] for s in steps if isinstance(s.get(key), (int, float)) and not isinstance(s.get(key), bool)]


def write_report(workspace: Path) -> Path:
    """Write `<workspace>/report.md` and its plots under `<workspace>/report/`; return report.md's path."""
    workspace = Path(workspace)
    loop = collect(workspace)
    arms = [collect(path, arm) for arm, path in existing_arms(workspace).items() if arm != LOOP]
    references = collect_references(workspace, loop)
    plot_dir = workspace / PLOT_DIR
    plot_dir.mkdir(exist_ok=True)
    plot_reward_per_step([loop, *arms], plot_dir / "reward_per_step.png")
    plot_accuracy_per_round([loop, *arms], plot_dir / "accuracy_per_round.png", references)
    plot_stacked_bars({r.n: r.composition for r in loop.rounds}, COMPOSITION_PARTS, "Loop data composition",
                      "samples", plot_dir / "data_composition.png")
    plot_stacked_bars({r.n: r.verdicts for r in loop.rounds if r.trained}, VERDICT_KINDS, "Judge verdicts",
                      "failed probes", plot_dir / "verdicts.png")
    plot_stacked_bars({r.n: r.expansion for r in loop.rounds if r.trained}, EXPANSION_STATUSES,
                      "Expansion attempts", "attempts", plot_dir / "expansion_yield.png")
    path = workspace / "report.md"
    path.write_text(render_markdown(workspace, loop, arms, references), encoding="utf-8")
    return path


# -- Markdown ---------------------------------------------------------------------------------


def render_markdown(workspace: Path, loop: RunData, arms: Sequence[RunData],
                    references: Sequence[Reference] = ()) -> str:
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# LoopTool report: {loop.name}", "", f"- Workspace: `{workspace}`"]
    if loop.model:
        lines.append(f"- Policy model: `{loop.model}`")
    lines += [f"- Generated: {generated}", ""]
    if not loop.rounds:
        lines += [f"No rounds yet: start the loop with `looptool loop -w {workspace}`.", ""]
    lines += ["## GRPO steps and signal per round", "",
              "Arms are compared only at equal GRPO steps. `frac_reward_zero_std`: the mean share of a round's "
              "groups whose rewards were all equal (such a group gives no gradient).", "",
              signal_table([loop, *arms]), ""]
    ran_static = any(a.arm == STATIC for a in arms)
    # The static arm first (arms come in the order of arms.ARMS); an empty table where it was not run.
    for arm in arms if ran_static else [None, *arms]:
        lines += [f"## Loop vs {arm.arm if arm is not None else STATIC}", ""]
        refusal = None if arm is None else steps_differ(loop, arm)
        lines += [refusal or comparison_table(loop, arm, references), ""]
    if not ran_static:
        lines += [f"The static baseline was not run (no workspace at `{static_workspace(workspace)}`); "
                  f"run it with `looptool loop --static -w {workspace}`.", ""]
    lines += ["## Plots", ""] + [f"![{caption}]({PLOT_DIR}/{name})\n" for name, caption in PLOTS.items()]
    lines += ["## Loop, per round", ""] + run_sections(loop, is_loop=True, references=references,
                                                       notes=reference_notes(workspace, references))
    for arm in arms:
        title = "Static baseline" if arm.arm == STATIC else f"Arm {arm.arm}"
        lines += [f"## {title}, per round", ""] + run_sections(arm, is_loop=arm.arm != STATIC)
    return "\n".join(lines)


def steps_differ(loop: RunData, arm: RunData) -> str | None:
    """Why the arm cannot be compared with the loop (one line), or None when every round both have
    trained spent the same recorded GRPO steps."""
    for n in sorted({r.n for r in arm.rounds if r.trained}):
        ours, theirs = loop.trained_round(n), arm.trained_round(n)
        if ours is None or theirs is None:
            continue
        if ours.steps is None or theirs.steps is None or ours.steps != theirs.steps:
            spent = lambda r: "no recorded" if r.steps is None else str(r.steps)  # noqa: E731
            return (f"Not compared: in round {n} the {arm.arm} arm spent {spent(theirs)} GRPO steps and the loop "
                    f"{spent(ours)}; arms are compared only at equal steps.")
    return None


def signal_table(runs: Sequence[RunData]) -> str:
    rows = []
    for n in sorted({r.n for run in runs for r in run.rounds if r.trained}):
        for run in runs:
            r = run.trained_round(n)
            if r is not None:
                rows.append([str(n), run.arm, _num(r.steps), _num(_mean(r.zero_std)), _num(_mean(r.rewards))])
    return _table(["Round", "Arm", "GRPO steps", "frac_reward_zero_std (mean)", "Reward (mean)"], rows)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def comparison_table(loop: RunData, arm: RunData | None, references: Sequence[Reference] = ()) -> str:
    numbers = sorted({r.n for run in (loop, arm) if run for r in run.rounds if r.trained})
    # The base and the warm start are where both arms start from: the same value in both columns
    # (in the loop's only, for an arm that was not run).
    same = (lambda v: _pct(v)) if arm is not None else (lambda v: "-")  # noqa: E731
    # ACEBench (its entries pooled) only where some round or reference was measured on it.
    suites = [("Held-out", lambda r: r.heldout), ("BFCL", lambda r: r.bfcl.get("all"))]
    if any(r.acebench for run in (loop, arm) if run for r in run.rounds) or any(ref.acebench for ref in references):
        suites.append(("ACEBench", lambda r: r.acebench.get("all")))
    rows = [[ref.name, *(cell for _, value in suites for cell in (_pct(value(ref)), same(value(ref)), "-"))]
            for ref in references if ref.measured]
    for n in numbers:
        ours, theirs = loop.trained_round(n), arm.trained_round(n) if arm else None
        row = [str(n)]
        for _, value in suites:
            pair = (value(ours) if ours else None, value(theirs) if theirs else None)
            row += [_pct(pair[0]), _pct(pair[1]), _diff(*pair)]
        rows.append(row)
    other = arm.arm if arm is not None else STATIC
    return _table(["Round", *(h for name, _ in suites for h in (f"{name} loop", f"{name} {other}", "Δ"))], rows)


def run_sections(run: RunData, *, is_loop: bool, references: Sequence[Reference] = (),
                 notes: Sequence[str] = ()) -> list[str]:
    """The per-round tables of one workspace; probe, verdicts and expansion only for the loop; the
    base model and the warm start (`references`) as the first rows of the evaluation table, `notes`
    under it."""
    if not run.rounds:
        return ["No rounds yet.", ""]
    trained = [r for r in run.rounds if r.trained]
    parts = _ordered((k for r in run.rounds for k in r.composition), COMPOSITION_PARTS)
    sections = {"Data composition": _table(
        ["Round", "Status", *parts, "Total"],
        [[str(r.n), r.status if r.trained else "pending (data only)", *(str(r.composition.get(p, 0)) for p in parts),
          str(sum(r.composition.values()))] for r in run.rounds])}
    if is_loop:
        sections["Probe categories"] = _table(
            ["Round", *PROBE_CATEGORIES, "Boundary cut (ppl)"],
            [[str(r.n), *(str(r.probe.get(c, 0)) for c in PROBE_CATEGORIES), _num(r.probe.get("boundary_cut"))]
             for r in trained if r.probe])
        sections["Verdicts"] = _table(
            ["Round", *VERDICT_KINDS, "by rule (no judge asked)", "judge gave no answer", "decided by a person",
             "LABEL_WRONG on exact labels"],
            [[str(r.n), *(str(r.verdicts.get(k, 0)) for k in VERDICT_KINDS), str(r.bases.get("rule", 0)),
              str(r.bases.get("no_answer", 0)), str(r.bases.get("by_person", 0)), str(r.bases.get("label_wrong_on_exact", 0))]
             for r in trained])
        statuses = _ordered((k for r in trained for k in r.expansion), EXPANSION_STATUSES)
        sections["Expansion"] = _table(
            ["Round", *statuses, "Yield (kept / attempts)"],
            [[str(r.n), *(str(r.expansion.get(s, 0)) for s in statuses), _yield(r.expansion)]
             for r in trained if r.expansion])
    measured = [ref for ref in references if ref.measured]
    sections["Evaluation"] = evaluation_table([*((ref.name, ref) for ref in measured), *((str(r.n), r) for r in trained)])
    if notes:
        sections["Evaluation"] += "\n\n" + "\n".join(notes).rstrip()
    sections["Training"] = _table(
        ["Round", "GRPO reward, first step", "GRPO reward, last step", "frac_reward_zero_std (mean)", "GRPO", "SFT"],
        [[str(r.n), _num(r.rewards[0] if r.rewards else None), _num(r.rewards[-1] if r.rewards else None),
          _num(_mean(r.zero_std)), _summary(r.training.get("grpo")), _summary(r.training.get("sft"))]
         for r in trained])
    stages = _ordered((k for r in trained for k in r.stage_seconds), ROUND_STAGES)
    sections["Stage wall time (s)"] = _table(
        ["Round", *stages, "Total"],
        [[str(r.n), *(_num(r.stage_seconds.get(s), 1) for s in stages), _num(sum(r.stage_seconds.values()), 1)]
         for r in trained if r.stage_seconds])
    return [line for title, table in sections.items() for line in (f"### {title}", "", table, "")]


def evaluation_table(models: Sequence[tuple[str, RoundData | Reference]]) -> str:
    """A row per model (base, warm start, each round): held-out, BFCL-v3 by category and ACEBench's
    Normal and Special side by side; the pooled figures with their 95% Wilson interval."""
    categories = _ordered((k for _, r in models for k in r.bfcl if k != "all"), ())
    with_ace = any(r.acebench for _, r in models)
    header = ["Round", "Held-out [95% CI]", *(f"BFCL {c}" for c in categories), "BFCL all [95% CI]"]
    if with_ace:
        header += ["ACEBench Normal", "ACEBench Special", "ACEBench all [95% CI]"]
    rows = []
    for name, r in models:
        row = [name, _with_interval(r.heldout, r.counts.get("heldout")), *(_pct(r.bfcl.get(c)) for c in categories),
               _with_interval(r.bfcl.get("all"), r.counts.get("bfcl"))]
        if with_ace:
            row += [_pct(r.acebench.get("normal")), _pct(r.acebench.get("special")),
                    _with_interval(r.acebench.get("all"), r.counts.get("acebench"))]
        rows.append(row)
    return _table(header, rows)


def _with_interval(value: float | None, counts: tuple[int, int] | None) -> str:
    """"33.5% [27.4, 40.2]" when the counts behind the value are known, else the value alone."""
    if value is None or not counts or not counts[1]:
        return _pct(value)
    low, high = wilson_interval(*counts)
    return f"{_pct(value)} [{100 * low:.1f}, {100 * high:.1f}]"


def reference_notes(workspace: Path, references: Sequence[Reference]) -> list[str]:
    """Where the base and warm-start rows come from, what they lack, and how to measure them."""
    if not references:
        return []
    lines = [f"Base (round 0) and warm start: the workspace's stored runs of `looptool eval heldout|bfcl` (round 0, "
             f"and `--adapter {workspace}/adapters/round-1-sft`), counted on the entries of the latest evaluated "
             "round."]
    lines += [f"- {note}" for ref in references for note in ref.notes]
    warm_start = Path(workspace, *WARM_START_ADAPTER)
    for ref in references:
        if ref.measured or (ref.name == WARM_START_LABEL and not warm_start.is_dir()):  # none was trained
            continue
        how = "" if ref.name == BASE_LABEL else f" --adapter {warm_start}"
        lines.append(f"- {ref.name}: not measured; `looptool eval heldout -w {workspace}{how}` (and `eval bfcl` "
                     "with the loop's categories and limit) measures it")
    return lines


def _table(header: Sequence[str], rows: list[list[str]]) -> str:
    if not rows:
        return "_No data yet._"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _ordered(keys: Iterable[str], order: Sequence[str]) -> list[str]:
    """The keys present: known ones in their natural order, then any others by name."""
    present = set(keys)
    return [k for k in order if k in present] + sorted(present - set(order))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _diff(ours: float | None, theirs: float | None) -> str:
    return "-" if ours is None or theirs is None else f"{100 * (ours - theirs):+.1f} pp"


def _num(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def _yield(counts: dict[str, int]) -> str:
    attempts = sum(counts.values())
    kept = counts.get("kept", 0)
    return f"{kept}/{attempts} ({100 * kept / attempts:.1f}%)" if attempts else "-"


def _summary(summary: dict[str, Any] | None) -> str:
    """The numbers of a training summary, steps first (its other keys vary by stage and version)."""
    if not summary:
        return "-"
    keys = sorted(summary, key=lambda k: k != "steps")
    numbers = [f"{k} {summary[k]:g}" for k in keys
               if isinstance(summary[k], (int, float)) and not isinstance(summary[k], bool)]
    return ", ".join(numbers) or "-"


# -- plots ------------------------------------------------------------------------------------


def _pyplot() -> Any:
    # Imported here so that importing the module (the CLI does) stays cheap; Agg draws to files
    # only, so no display is needed.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, ax: Any, path: Path, *, title: str, has_data: bool) -> None:
    ax.set_title(title)
    if has_data:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)  # pyplot keeps every open figure alive otherwise


def plot_reward_per_step(runs: Sequence[RunData], path: Path) -> None:
    plot_per_step(runs, path, values=lambda r: r.rewards, ylabel="mean reward", title="GRPO reward per step")


def plot_per_step(runs: Sequence[RunData], path: Path, *, values: Callable[[RoundData], list[float]], ylabel: str,
                  title: str) -> None:
    """One GRPO metric per logged step, steps numbered on across rounds; a dotted line where a round
    begins; a colour per arm."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    has_data = False
    for i, run in enumerate(runs):
        label, color = run.arm, f"C{i}"
        points: list[float] = []
        for r in run.rounds:
            if points and values(r):
                ax.axvline(len(points) + 0.5, color=color, linestyle=":", linewidth=1)
            points += values(r)
        if points:
            ax.plot(range(1, len(points) + 1), points, color=color, marker=".", label=label)
            has_data = True
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("GRPO step (all rounds)")
    ax.set_ylabel(ylabel)
    _save(fig, ax, path, title=title, has_data=has_data)


def accuracy_series(runs: Sequence[RunData], references: Sequence[Reference] = ()
                    ) -> list[tuple[int, str, list[tuple[float, float]]]]:
    """The accuracy plot's lines: (run index, suite, [(x, percent)]), each starting at the base model
    (x = 0) and the warm start (x = 0.5) where they were measured, then the run's trained rounds."""
    suites = (("held-out", lambda r: r.heldout), ("BFCL", lambda r: r.bfcl.get("all")))
    series = []
    for i, run in enumerate(runs):
        for suite, accuracy in suites:
            start = [(ref.x, 100 * accuracy(ref)) for ref in references if accuracy(ref) is not None]
            rounds = [(float(r.n), 100 * accuracy(r)) for r in run.rounds if r.trained and accuracy(r) is not None]
            if rounds:
                series.append((i, suite, start + rounds))
    return series


def plot_accuracy_per_round(runs: Sequence[RunData], path: Path, references: Sequence[Reference] = ()) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    styles = {"held-out": "-", "BFCL": "--"}
    # A colour per arm, a line style per suite: an arm's two suites read as a pair; every line starts
    # from the base and the warm start, which are marked once.
    for i, suite, points in accuracy_series(runs, references):
        ax.plot(*zip(*points), color=f"C{i}", linestyle=styles[suite], marker="o", label=f"{runs[i].arm} {suite}")
    for ref, marker in zip(references, ("D", "s")):
        values = [100 * v for v in (ref.heldout, ref.bfcl.get("all")) if v is not None]
        if values:  # one legend entry per model, its held-out and BFCL points alike
            ax.plot([ref.x] * len(values), values, color="black", marker=marker, linestyle="none", label=ref.name)
    has_data = bool(ax.lines)
    ticks = {ref.x: ref.name.split(" (")[0] for ref in references if ref.measured} if has_data else {}
    save_percent_per_round(fig, ax, path, ylabel="accuracy (%)", title="Accuracy per round", has_data=has_data,
                           ticks=ticks)


def save_percent_per_round(fig: Any, ax: Any, path: Path, *, ylabel: str, title: str, has_data: bool,
                           ticks: dict[float, str] | None = None) -> None:
    """Label a plot of percentages (0-100) over whole rounds and save it; `ticks` names extra places
    on the round axis (the base model at 0, the warm start at 0.5)."""
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if ticks:
        rounds = [t for t in ax.get_xticks() if t >= 1 and t == int(t) and t <= ax.get_xlim()[1]]
        places = {**{t: str(int(t)) for t in rounds}, **ticks}
        ax.set_xticks(sorted(places), [places[t] for t in sorted(places)])
    _save(fig, ax, path, title=title, has_data=has_data)


def plot_stacked_bars(by_round: dict[int, dict[str, int]], order: Sequence[str], title: str, ylabel: str,
                      path: Path) -> None:
    """One bar per round, stacked by part (data parts, verdict kinds, expansion statuses)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    rounds = [n for n, counts in sorted(by_round.items()) if counts]
    bottoms = [0] * len(rounds)
    for part in _ordered((k for n in rounds for k in by_round[n]), order):
        heights = [by_round[n].get(part, 0) for n in rounds]
        ax.bar(rounds, heights, bottom=bottoms, label=part)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_xticks(rounds)
    if rounds:  # room around a lone bar, which would otherwise fill the axes
        ax.set_xlim(min(rounds) - 1, max(rounds) + 1)
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    _save(fig, ax, path, title=title, has_data=bool(rounds))
