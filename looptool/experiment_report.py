"""The report of an experiment: the loop against its arms, from one SFT warm start, with the counts,
confidence intervals and paired tests that say whether a difference is more than chance.

`write_experiment_report(workspace)` reads the loop's workspace and every arm beside it (loop/arms.py)
and writes `experiment.md` with three PNG plots next to it. Every accuracy is shown with its count
and its 95% Wilson interval, e.g. `41.3% (62/150) [33.8, 49.3]`; every comparison of two models is
paired on the items both answered, with the exact McNemar p-value (stats.py). The sections:

* Header: the workspace, the seed, the arms, the rounds each arm trained, the GRPO steps per round
  and the machine the report was written on.
* Acceptance: whether each target holds, with its numbers, or "not measured" where data is missing.
* Held-out exact match: base (round 0), warm start, and every evaluated round of every arm, on all
  held-out items and split by label: a call, or no call.
* Paired tests on the held-out items: each arm's final round against the loop's same round, the
  loop's final round against the warm start and the base, and the loop against static per round.
* BFCL-v3 subset: per category and overall, for base, warm start and each arm's final BFCL run,
  and loop vs static paired per category and overall.
* ACEBench-en subset (when run: `looptool experiment --acebench N`): Normal, Special and the entries
  pooled for the same models, and loop vs static paired.
* GRPO signal: mean reward, mean frac_reward_zero_std and the share of steps with a non-zero loss,
  per round per arm.
* Data composition and wall time per stage, per round per arm.
* Missing: what was looked for and not found (a half-finished experiment renders what exists).

Which evaluation runs are read (the runs `looptool eval` and the loop's evaluate node store):

* base: in the loop's workspace, the run of the suite whose round is 0 and that has no adapter;
* warm start: in the loop's workspace, the run of the suite with no round whose adapter path ends
  in `adapters/round-1-sft` (`looptool eval heldout|bfcl --adapter <ws>/adapters/round-1-sft`);
* an arm's round R: in the arm's workspace, the run named in round R's metrics (`eval.heldout_run`,
  `eval.bfcl_run`: the evaluate node's), else the run of the suite whose round is R
  (`looptool eval heldout|bfcl --round R`). An arm's BFCL result is its latest round that has one.
  ACEBench is read the same way (`looptool eval acebench`), and is optional: no run is "missing".

Where several runs fit (other settings), the one with the most scored items wins. Held-out items
are split by the category eval/heldout.py stores: `<scenario>/call` or `<scenario>/text`.
Everything is read through the Store; nothing is written to the database.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from looptool.config import DB_FILE, load_config
from looptool.eval.acebench_suite import category_sizes, summarise
from looptool.eval.bfcl_data import ALL_CATEGORIES as BFCL_CATEGORIES
from looptool.eval.show import is_base_run, is_warm_start_run
from looptool.loop.arms import LOOP, STATE_FILE, STATIC, arm_workspace, existing_arms
from looptool.report import (
    COMPOSITION_PARTS,
    RoundData,
    RunData,
    _mean,
    _num,
    _ordered,
    _pct,
    _pyplot,
    _table,
    collect,
    fullest_run,
    plot_per_step,
    save_percent_per_round,
)
from looptool.schema import ROUND_STAGES, EvalMetrics
from looptool.stats import PairedResult, paired, wilson_interval
from looptool.store import Store

REPORT_FILE = "experiment.md"
PLOTS = {  # file name (next to experiment.md) -> caption
    "experiment_heldout.png": "Held-out exact match per round, 95% Wilson intervals",
    "experiment_zero_std.png": "frac_reward_zero_std per GRPO step",
    "experiment_reward.png": "GRPO reward per step",
}
HELDOUT, BFCL, ACEBENCH = "heldout", "bfcl", "acebench"
SUITES = (HELDOUT, BFCL, ACEBENCH)
BASE, WARM_START = "base", "warm start"
ALL, CALLS = "all held-out", "label is a call"
# Held-out parts: name -> which stored categories ("<scenario>/call" or "<scenario>/text") belong.
HELDOUT_PARTS: dict[str, Callable[[str], bool]] = {
    ALL: lambda category: True,
    CALLS: lambda category: category.endswith("/call"),
    "label is no call": lambda category: category.endswith("/text"),
}
NOT_MEASURED = "not measured"
PAIRED_COLUMNS = ("n", "A", "B", "only A", "only B", "Δ (points)", "McNemar p", "dropped")

# The acceptance targets.
MIN_GAIN_POINTS = 5.0
MAX_P_VALUE = 0.05
MIN_HELDOUT = 0.50
MIN_HELDOUT_CALLS = 0.40
MIN_BFCL_SIMPLE = 0.30


@dataclass
class Outcomes:
    """One run's scored items: item id -> passed, and item id -> category."""

    run_id: str
    passed: dict[str, bool]
    categories: dict[str, str]

    def where(self, keep: Callable[[str], bool]) -> dict[str, bool]:
        """The outcomes of the items whose category `keep` accepts."""
        return {item: ok for item, ok in self.passed.items() if keep(self.categories[item])}


@dataclass
class ArmResults:
    """One arm: its rounds (report.collect) and the evaluation runs of its trained rounds."""

    run: RunData
    heldout: dict[int, Outcomes] = field(default_factory=dict)  # round -> its held-out run
    bfcl: dict[int, Outcomes] = field(default_factory=dict)  # round -> its BFCL run
    acebench: dict[int, Outcomes] = field(default_factory=dict)  # round -> its ACEBench run (optional)

    @property
    def name(self) -> str:
        return self.run.arm

    @property
    def trained_rounds(self) -> list[int]:
        return [r.n for r in self.run.rounds if r.trained]

    @property
    def final_heldout_round(self) -> int | None:
        return max(self.heldout, default=None)

    @property
    def final_bfcl_round(self) -> int | None:
        return max(self.bfcl, default=None)

    @property
    def final_acebench_round(self) -> int | None:
        return max(self.acebench, default=None)


@dataclass
class Experiment:
    workspace: Path
    name: str
    seed: str
    arms: dict[str, ArmResults]  # the loop first, then in the order of arms.ARMS
    base: dict[str, Outcomes]  # suite -> the base model's run
    warm_start: dict[str, Outcomes]  # suite -> the warm start's run
    missing: list[str]  # what was looked for and not found, one line each
    step_seconds: dict[str, float] = field(default_factory=dict)  # `looptool experiment`'s steps, in order

    @property
    def loop(self) -> ArmResults:
        return self.arms[LOOP]

    @property
    def static(self) -> ArmResults | None:
        return self.arms.get(STATIC)


def write_experiment_report(workspace: Path, *, seed_label: str | None = None) -> Path:
    """Write `<workspace>/experiment.md` and its plots next to it; return the Markdown file's path."""
    workspace = Path(workspace)
    experiment = collect_experiment(workspace, seed_label=seed_label)
    runs = [arm.run for arm in experiment.arms.values()]
    plot_heldout_per_round(experiment, workspace / "experiment_heldout.png")
    plot_per_step(runs, workspace / "experiment_zero_std.png", values=lambda r: r.zero_std,
                  ylabel="frac_reward_zero_std", title="frac_reward_zero_std per GRPO step")
    plot_per_step(runs, workspace / "experiment_reward.png", values=lambda r: r.rewards, ylabel="mean reward",
                  title="GRPO reward per step")
    path = workspace / REPORT_FILE
    path.write_text(render_experiment(experiment), encoding="utf-8")
    return path


# -- reading the workspaces -------------------------------------------------------------------


def collect_experiment(workspace: Path, *, seed_label: str | None = None) -> Experiment:
    """Everything the report shows; not a workspace raises what every command raises (ConfigError)."""
    workspace = Path(workspace)
    config = load_config(workspace)
    missing: list[str] = []
    base: dict[str, Outcomes] = {}
    warm_start: dict[str, Outcomes] = {}
    with Store.open(workspace / DB_FILE) as store:
        for suite in SUITES:
            for model, found, lookup in ((BASE, base, is_base_run), (WARM_START, warm_start, is_warm_start_run)):
                outcomes = _outcomes(store, fullest_run(store, [r for r in store.eval_runs(suite) if lookup(r)]))
                if outcomes is None:
                    if suite != ACEBENCH:  # optional: `looptool experiment --acebench N`
                        missing.append(f"{model}: no {suite} run in `{workspace.name}`")
                else:
                    found[suite] = outcomes
    arms = {name: collect_arm(path, name, missing) for name, path in existing_arms(workspace).items()}
    if STATIC not in arms:
        missing.append(f"{STATIC}: not run (no workspace at `{arm_workspace(workspace, STATIC)}`)")
    seed = seed_label if seed_label is not None else f"{config.train.seed} (`[train] seed`)"
    return Experiment(workspace, config.name, seed, arms, base, warm_start, missing, _step_seconds(workspace))


def _step_seconds(workspace: Path) -> dict[str, float]:
    """The wall time of each finished step of `looptool experiment` (its state file), if it ran."""
    import json

    path = workspace / STATE_FILE
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")).get("steps", {}))


def collect_arm(workspace: Path, arm: str, missing: list[str]) -> ArmResults:
    """An arm's rounds and the runs of its trained rounds; each run not found adds a line to `missing`."""
    results = ArmResults(collect(workspace, arm))
    with Store.open(workspace / DB_FILE) as store:
        runs = {suite: store.eval_runs(suite) for suite in SUITES}
        for info in store.rounds():
            if info.status == "pending":
                continue
            run_ids = (info.metrics.eval or EvalMetrics()).run_ids()
            for suite, found in ((HELDOUT, results.heldout), (BFCL, results.bfcl), (ACEBENCH, results.acebench)):
                candidates = [r for r in runs[suite] if r["round"] == info.n]
                named = [r for r in candidates if r["id"] == run_ids[suite]]
                outcomes = _outcomes(store, fullest_run(store, named or candidates))
                if outcomes is not None:
                    found[info.n] = outcomes
    for n in results.trained_rounds:
        if n not in results.heldout:
            missing.append(f"{arm} round {n}: no heldout run")
    if not results.bfcl:
        missing.append(f"{arm}: no bfcl run of any round")
    return results


def _outcomes(store: Store, run_id: str | None) -> Outcomes | None:
    if run_id is None:
        return None
    rows = store.eval_results(run_id)
    if not rows:
        return None
    return Outcomes(run_id, {r["entry_id"]: bool(r["passed"]) for r in rows},
                    {r["entry_id"]: r["category"] for r in rows})


def machine_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU model, the logical CPUs and whether the CPU has avx512_bf16 (bf16 matrix maths on a CPU)."""
    cpus = f"{os.cpu_count() or '?'} logical CPUs"
    if not cpuinfo.is_file():
        return f"{platform.processor() or platform.machine() or 'unknown CPU'}, {cpus}, avx512_bf16 unknown"
    fields: dict[str, str] = {}
    for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first processor's values
    model = fields.get("model name") or platform.processor() or "unknown CPU"
    bf16 = "avx512_bf16" in fields.get("flags", "").split()
    return f"{model}, {cpus}, avx512_bf16 {'present' if bf16 else 'absent'}"


# -- Markdown ---------------------------------------------------------------------------------


def render_experiment(experiment: Experiment) -> str:
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        (f"# LoopTool experiment: {experiment.name}", header_lines(experiment) + [f"- Generated: {generated}"]),
        ("## Acceptance", [acceptance_table(experiment)]),
        ("## Held-out exact match", [
            "Exact match of the calls (or of no call) on the held-out samples (tools no training sample uses); "
            "each cell: accuracy (passed/items) [95% Wilson interval].", "", heldout_table(experiment),
            "", f"![{PLOTS['experiment_heldout.png']}](experiment_heldout.png)"]),
        ("## Paired tests on the held-out items", [
            "Each pair on the items both models answered (`dropped`: items only one of them has). Only A / "
            "only B: items one got right and the other wrong; Δ: A minus B in percentage points; p: exact McNemar, "
            "two-sided.", "",
            "### Final round vs the loop", "", final_paired_table(experiment), "",
            "### Loop vs static, per round", "", per_round_paired_table(experiment)]),
        ("## BFCL-v3 subset", [
            "The same first entries of each category for every model; each cell: accuracy (passed/entries) "
            "[95% Wilson interval].", "", bfcl_table(experiment), "",
            "### Loop vs static, paired", "", bfcl_paired_table(experiment)]),
        ("## ACEBench-en subset", acebench_section(experiment)),
        ("## GRPO signal", [
            "Means over a round's logged steps. `frac_reward_zero_std`: the share of groups whose rewards were "
            "all equal (no gradient). Loss ≠ 0: the logged steps whose loss was not zero.", "",
            grpo_table(experiment), "", f"![{PLOTS['experiment_zero_std.png']}](experiment_zero_std.png)", "",
            f"![{PLOTS['experiment_reward.png']}](experiment_reward.png)"]),
        ("## Data composition per round", [composition_table(experiment)]),
        ("## Wall time per stage (s)", [stage_time_table(experiment)]),
        ("## Wall time per experiment step (s)", [step_time_table(experiment)]),
        ("## Missing", [f"- {line}" for line in experiment.missing] or ["Nothing: every run looked for was found."]),
    ]
    return "\n".join(line for title, body in sections for line in (title, "", *body, ""))


def header_lines(experiment: Experiment) -> list[str]:
    loop = experiment.loop
    steps = {r.n: r.steps for r in loop.run.rounds if r.trained}
    distinct = set(steps.values())
    if not steps:
        steps_text = "none recorded yet"
    elif len(distinct) == 1 and None not in distinct:
        steps_text = f"{distinct.pop()} in each round"
    else:
        steps_text = ", ".join(f"round {n}: {s if s is not None else 'not recorded'}" for n, s in steps.items())
    trained = ", ".join(f"{arm.name} {_rounds_text(arm.trained_rounds)}" for arm in experiment.arms.values())
    return [
        f"- Workspace: `{experiment.name}` (`{experiment.workspace}`)",
        f"- Seed: {experiment.seed}",
        f"- Arms: {', '.join(experiment.arms)}",
        f"- Rounds trained: {trained}",
        f"- GRPO steps per round (the loop's; every arm spends the same): {steps_text}",
        f"- Machine (where this report was written): {machine_description()}",
    ]


def _rounds_text(rounds: Sequence[int]) -> str:
    if not rounds:
        return "none"
    return f"round {rounds[0]}" if len(rounds) == 1 else f"rounds {rounds[0]}-{rounds[-1]}"


def acceptance_table(experiment: Experiment) -> str:
    rows = [
        ["Loop final held-out >= static + 5 points, McNemar p < 0.05", *_gain_over_static(experiment)],
        ["Loop final held-out >= 50% (all held-out)", *_at_least(_final_loop_heldout(experiment, ALL), MIN_HELDOUT)],
        ["Loop final held-out >= 40% (label is a call)",
         *_at_least(_final_loop_heldout(experiment, CALLS), MIN_HELDOUT_CALLS)],
        ["Loop's mean frac_reward_zero_std < static's in every round after the first", *_less_zero_std(experiment)],
        ["Loop BFCL simple >= 30%", *_at_least(_loop_bfcl(experiment, "simple"), MIN_BFCL_SIMPLE)],
    ]
    return _table(["Target", "Measured", "Verdict"], rows)


def _verdict(holds: bool) -> str:
    return "**holds**" if holds else "**does not hold**"


def _gain_over_static(experiment: Experiment) -> list[str]:
    n = experiment.loop.final_heldout_round
    static = experiment.static
    if n is None:
        return ["the loop has no held-out run", NOT_MEASURED]
    if static is None or n not in static.heldout:
        return [f"static has no held-out run of round {n}", NOT_MEASURED]
    result = paired(experiment.loop.heldout[n].passed, static.heldout[n].passed)
    if result.n == 0:
        return [f"round {n}: no held-out item in both runs", NOT_MEASURED]
    holds = result.diff_points >= MIN_GAIN_POINTS and result.p_value < MAX_P_VALUE  # type: ignore[operator]
    measured = (f"round {n}: loop {_count(result.a_correct, result.n)} vs static {_count(result.b_correct, result.n)}, "
                f"{_points(result.diff_points)} points, p = {_p(result.p_value)}")
    return [measured, _verdict(holds)]


def _final_loop_heldout(experiment: Experiment, part: str) -> tuple[str, dict[str, bool]] | None:
    n = experiment.loop.final_heldout_round
    if n is None:
        return None
    return f"round {n}", experiment.loop.heldout[n].where(HELDOUT_PARTS[part])


def _loop_bfcl(experiment: Experiment, category: str) -> tuple[str, dict[str, bool]] | None:
    n = experiment.loop.final_bfcl_round
    if n is None:
        return None
    return f"round {n}", experiment.loop.bfcl[n].where(lambda c: c == category)


def _at_least(measured: tuple[str, dict[str, bool]] | None, target: float) -> list[str]:
    if measured is None or not measured[1]:
        return [f"{measured[0]}: no items" if measured else "no run", NOT_MEASURED]
    where, passed = measured
    k, n = sum(passed.values()), len(passed)
    return [f"{where}: {_cell(k, n)}", _verdict(k / n >= target)]


def _less_zero_std(experiment: Experiment) -> list[str]:
    static = experiment.static
    later = [n for n in experiment.loop.trained_rounds if n > 1]
    if static is None or not later:
        return ["no static arm" if static is None else "the loop has trained no round after the first", NOT_MEASURED]
    parts, holds, unmeasured = [], True, []
    for n in later:
        ours, theirs = experiment.loop.run.trained_round(n), static.run.trained_round(n)
        loop_mean = _mean(ours.zero_std) if ours else None
        static_mean = _mean(theirs.zero_std) if theirs else None
        if loop_mean is None or static_mean is None:
            unmeasured.append(n)
            continue
        holds = holds and loop_mean < static_mean
        parts.append(f"round {n}: {loop_mean:.3f} vs {static_mean:.3f}")
    if unmeasured:
        parts.append(f"round {', '.join(map(str, unmeasured))}: no logged steps in both arms")
    if not holds:
        return ["; ".join(parts), _verdict(False)]
    return ["; ".join(parts), NOT_MEASURED if unmeasured else _verdict(True)]


def heldout_table(experiment: Experiment) -> str:
    rows = []
    for model, round_text, outcomes in _heldout_models(experiment):
        rows.append([model, round_text, *(_accuracy(outcomes.where(keep)) for keep in HELDOUT_PARTS.values())])
    return _table(["Model", "Round", *HELDOUT_PARTS], rows)


def _heldout_models(experiment: Experiment) -> list[tuple[str, str, Outcomes]]:
    """(model, round, run) of every held-out run the report shows, base and warm start first."""
    models = [(name, text, runs[HELDOUT]) for name, text, runs in
              ((BASE, "0", experiment.base), (WARM_START, "SFT", experiment.warm_start)) if HELDOUT in runs]
    for arm in experiment.arms.values():
        models += [(arm.name, str(n), arm.heldout[n]) for n in sorted(arm.heldout)]
    return models


def final_paired_table(experiment: Experiment) -> str:
    """Each arm's final round against the loop's same round; the loop's final round against the
    warm start and the base; on all held-out items and on those whose label is a call."""
    pairs: list[tuple[str, Outcomes, Outcomes]] = []
    loop = experiment.loop
    for arm in experiment.arms.values():
        n = arm.final_heldout_round
        if arm.name == LOOP or n is None:
            continue
        if n in loop.heldout:
            pairs.append((f"loop vs {arm.name}, round {n}", loop.heldout[n], arm.heldout[n]))
    n = loop.final_heldout_round
    if n is not None:
        for name, runs in ((WARM_START, experiment.warm_start), (BASE, experiment.base)):
            if HELDOUT in runs:
                pairs.append((f"loop round {n} vs {name}", loop.heldout[n], runs[HELDOUT]))
    return _paired_table(pairs)


def per_round_paired_table(experiment: Experiment) -> str:
    static = experiment.static
    if static is None:
        return "_Not measured: the static arm was not run._"
    rounds = sorted(experiment.loop.heldout.keys() & static.heldout.keys())
    return _paired_table([(f"round {n}", experiment.loop.heldout[n], static.heldout[n]) for n in rounds])


def _paired_table(pairs: Sequence[tuple[str, Outcomes, Outcomes]]) -> str:
    rows = []
    for label, a, b in pairs:
        for part in (ALL, CALLS):
            keep = HELDOUT_PARTS[part]
            rows.append([label, part, *_paired_cells(paired(a.where(keep), b.where(keep)))])
    return _table(["A vs B", "Items", *PAIRED_COLUMNS], rows)



def _paired_cells(result: PairedResult) -> list[str]:
    if result.n == 0:
        return ["0", "-", "-", "-", "-", "-", "-", str(result.dropped)]
    return [str(result.n), _count(result.a_correct, result.n), _count(result.b_correct, result.n),
            str(result.only_a), str(result.only_b), _points(result.diff_points), _p(result.p_value),
            str(result.dropped)]


def bfcl_table(experiment: Experiment) -> str:
    models = _bfcl_models(experiment)
    categories = _bfcl_categories(outcomes for _, outcomes in models)
    rows = []
    for label, outcomes in models:
        cells = [_accuracy(outcomes.where(lambda c, cat=cat: c == cat)) for cat in categories]
        rows.append([label, *cells, _accuracy(outcomes.passed)])
    return _table(["Model", *categories, "overall"], rows)


def _bfcl_models(experiment: Experiment) -> list[tuple[str, Outcomes]]:
    models = [(name, runs[BFCL]) for name, runs in ((BASE, experiment.base), (WARM_START, experiment.warm_start))
              if BFCL in runs]
    for arm in experiment.arms.values():
        n = arm.final_bfcl_round
        if n is not None:
            models.append((f"{arm.name} (round {n})", arm.bfcl[n]))
    return models


def _bfcl_categories(runs: Iterable[Outcomes]) -> list[str]:
    present = {c for outcomes in runs for c in outcomes.categories.values()}
    return _ordered(present, BFCL_CATEGORIES)


def bfcl_paired_table(experiment: Experiment) -> str:
    loop, static = experiment.loop, experiment.static
    if loop.final_bfcl_round is None or static is None or static.final_bfcl_round is None:
        return f"_Not measured: {'the loop' if loop.final_bfcl_round is None else 'static'} has no BFCL run._"
    ours, theirs = loop.bfcl[loop.final_bfcl_round], static.bfcl[static.final_bfcl_round]
    rows = []
    for category in _bfcl_categories([ours, theirs]):
        keep = lambda c, cat=category: c == cat  # noqa: E731
        rows.append([category, *_paired_cells(paired(ours.where(keep), theirs.where(keep)))])
    rows.append(["overall", *_paired_cells(paired(ours.passed, theirs.passed))])
    title = f"A = loop (round {loop.final_bfcl_round}), B = static (round {static.final_bfcl_round})"
    return title + "\n\n" + _table(["Category", *PAIRED_COLUMNS], rows)


def acebench_section(experiment: Experiment) -> list[str]:
    """Normal and Special (ACEBench's means of sub-categories, on the entries run) and the entries
    pooled, per model; the loop against static on the same entries. Only when some model has a run."""
    models = [(name, runs[ACEBENCH]) for name, runs in ((BASE, experiment.base), (WARM_START, experiment.warm_start))
              if ACEBENCH in runs]
    models += [(f"{arm.name} (round {arm.final_acebench_round})", arm.acebench[arm.final_acebench_round])
               for arm in experiment.arms.values() if arm.final_acebench_round is not None]
    if not models:
        return ["_Not run: `looptool experiment --acebench N` adds the first N entries of each ACEBench-en Normal "
                "and Special category for the base model, the warm start and each arm's final adapter._"]
    rows = []
    for label, outcomes in models:
        summary = summarise([{"entry_id": i, "category": c, "passed": outcomes.passed[i]}
                             for i, c in outcomes.categories.items()], category_sizes())
        rows.append([label, _pct(summary.normal.accuracy), _pct(summary.special.accuracy),
                     _accuracy(outcomes.passed)])
    lines = ["The same first entries of each category for every model. Normal and Special: ACEBench's unweighted "
             "means of their sub-categories (a multi-turn dialogue passes when all its turns pass); entries: "
             "accuracy over the entries pooled (passed/entries) [95% Wilson interval].", "",
             _table(["Model", "Normal", "Special", "entries"], rows)]
    loop, static = experiment.loop, experiment.static
    if loop.final_acebench_round is not None and static is not None and static.final_acebench_round is not None:
        result = paired(loop.acebench[loop.final_acebench_round].passed, static.acebench[static.final_acebench_round].passed)
        lines += ["", f"Loop (round {loop.final_acebench_round}) vs static (round {static.final_acebench_round}) on "
                  "the same entries:", "", _table(list(PAIRED_COLUMNS), [_paired_cells(result)])]
    return lines


def grpo_table(experiment: Experiment) -> str:
    rows = []
    for n, arm, r in _trained_rounds(experiment):
        nonzero = sum(1 for loss in r.losses if loss != 0)
        rows.append([str(n), arm, _num(r.steps), str(len(r.rewards)), _num(_mean(r.rewards)),
                     _num(_mean(r.zero_std)), _count(nonzero, len(r.losses)) if r.losses else "-"])
    return _table(["Round", "Arm", "GRPO steps", "Logged steps", "Reward (mean)", "frac_reward_zero_std (mean)",
                   "Loss ≠ 0"], rows)


def composition_table(experiment: Experiment) -> str:
    trained = _trained_rounds(experiment)
    parts = _ordered((k for _, _, r in trained for k in r.composition), COMPOSITION_PARTS)
    rows = [[str(n), arm, *(str(r.composition.get(p, 0)) for p in parts), str(sum(r.composition.values()))]
            for n, arm, r in trained]
    return _table(["Round", "Arm", *parts, "Total"], rows)


def stage_time_table(experiment: Experiment) -> str:
    trained = [(n, arm, r) for n, arm, r in _trained_rounds(experiment) if r.stage_seconds]
    stages = _ordered((k for _, _, r in trained for k in r.stage_seconds), ROUND_STAGES)
    rows = [[str(n), arm, *(_num(r.stage_seconds.get(s), 1) for s in stages), _num(sum(r.stage_seconds.values()), 1)]
            for n, arm, r in trained]
    return _table(["Round", "Arm", *stages, "Total"], rows)


def step_time_table(experiment: Experiment) -> str:
    if not experiment.step_seconds:
        return "Not recorded (the arms were not run by `looptool experiment`)."
    rows = [[key, _num(seconds, 0)] for key, seconds in experiment.step_seconds.items()]
    total = sum(experiment.step_seconds.values())
    return _table(["Step", "Seconds"], [*rows, ["total", f"{_num(total, 0)} ({total / 60:.1f} min)"]])


def _trained_rounds(experiment: Experiment) -> list[tuple[int, str, RoundData]]:
    """(round, arm, RoundData) of every trained round, by round then arm."""
    rows = [(r.n, arm.name, r) for arm in experiment.arms.values() for r in arm.run.rounds if r.trained]
    order = list(experiment.arms)
    return sorted(rows, key=lambda row: (row[0], order.index(row[1])))


# -- cells ------------------------------------------------------------------------------------


def _accuracy(passed: Mapping[str, bool]) -> str:
    """"41.3% (62/150) [33.8, 49.3]": accuracy, count and 95% Wilson interval; "-" without items."""
    return _cell(sum(passed.values()), len(passed)) if passed else "-"


def _cell(k: int, n: int) -> str:
    low, high = wilson_interval(k, n)
    return f"{_count(k, n)} [{100 * low:.1f}, {100 * high:.1f}]"


def _count(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}% ({k}/{n})"


def _points(diff: float | None) -> str:
    return "-" if diff is None else f"{diff:+.1f}"


def _p(p: float) -> str:
    return f"{p:.4f}" if p >= 0.0001 else f"{p:.1e}"


# -- plots ------------------------------------------------------------------------------------


def plot_heldout_per_round(experiment: Experiment, path: Path) -> None:
    """All held-out items: a line per arm with 95% Wilson error bars; base and warm start as
    horizontal reference lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    has_data = False
    for i, arm in enumerate(experiment.arms.values()):
        rounds = sorted(arm.heldout)
        if not rounds:
            continue
        counts = [(sum(arm.heldout[n].passed.values()), len(arm.heldout[n].passed)) for n in rounds]
        values = [100 * k / n for k, n in counts]
        intervals = [wilson_interval(k, n) for k, n in counts]
        below = [v - 100 * low for v, (low, _) in zip(values, intervals)]
        above = [100 * high - v for v, (_, high) in zip(values, intervals)]
        # A small offset per arm keeps overlapping error bars apart.
        ax.errorbar([n + 0.04 * i for n in rounds], values, yerr=[below, above], color=f"C{i}", marker="o",
                    capsize=3, label=arm.name)
        has_data = True
    for name, runs, style in ((BASE, experiment.base, ":"), (WARM_START, experiment.warm_start, "--")):
        if HELDOUT in runs:
            passed = runs[HELDOUT].passed
            value = 100 * sum(passed.values()) / len(passed)
            ax.axhline(value, color="grey", linestyle=style, label=f"{name} ({value:.1f}%)")
            has_data = True
    save_percent_per_round(fig, ax, path, ylabel="held-out exact match (%)", title="Held-out exact match per round",
                           has_data=has_data)
