"""The report of a loop workspace, from stores filled by hand: the comparison with the static
baseline, the per-round tables, the plots, and the workspaces that have no baseline or no rounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import DB_FILE, ConfigError
from looptool.report import PLOTS, write_report
from looptool.schema import Round, Verdict
from looptool.seed.templated import templated_samples
from looptool.store import Store

SAMPLES = templated_samples(8, seed=1)


def _init(runner, path: Path, name: str) -> Path:
    result = runner.invoke(app, ["init", str(path), "--name", name])
    assert result.exit_code == 0, result.output
    return path


def _fill_loop(ws: Path) -> None:
    """Two trained rounds and round 3's assembled data; verdicts and expansions in round 1."""
    ids = [s.id for s in SAMPLES]
    with Store.open(ws / DB_FILE) as store:
        store.upsert_samples(SAMPLES)
        store.upsert_round(Round(n=1, status="done", stage="done", data_ids=ids, metrics={
            "composition": {"fresh_seed": 8},
            "probe": {"mastered": 3, "boundary": 2, "failed": 3, "boundary_cut": 1.75},
            "eval": {"heldout": 0.25, "bfcl": {"simple": 0.5, "multiple": None, "all": 0.5}},
            "grpo": {"steps": 2, "seconds": 42.5, "device": "cpu"},
            "stage_seconds": {"train": 30.0, "probe": 5.0},
        }))
        store.upsert_round(Round(n=2, status="done", stage="done", data_ids=ids[:6], metrics={
            "composition": {"corrected": 1, "error": 2, "both_ok": 0, "expanded": 3, "fresh_seed": 0},
            "eval": {"heldout": 0.375}, "grpo": {"steps": 3},
        }))
        store.upsert_round(Round(n=3, status="pending", data_ids=ids[:4],
                                 metrics={"composition": {"error": 2, "boundary": 2}}))
        for kind, sample, basis, override in zip(["PRED_WRONG", "PRED_WRONG", "PRED_WRONG"], SAMPLES,
                                                 ["judge", "rule", "person"], ["LABEL_WRONG", None, None]):
            # (templated samples are exact: a person's LABEL_WRONG on one is what the report must show;
            # the first and the third were decided by a person)
            store.upsert_verdict(Verdict(sample_id=sample.id, round=1, verdict=kind, basis=basis,
                                         human_override=override))
        for slot, status in enumerate(["kept"] * 3 + ["invalid"] * 2 + ["rejected"] * 2 + ["duplicate"]):
            store.add_expansion(ids[1], 1, slot, status=status, dimension="paraphrase")
        for round, rewards in ((1, [0.25, 0.5]), (2, [0.5, 0.75])):
            for step, reward in enumerate(rewards, start=1):
                store.add_train_step(round, "grpo", step, {"reward": reward, "loss": 0.1,
                                                           "frac_reward_zero_std": 1.0 if step == 1 else 0.5})


def _fill_static(ws: Path, round_two_steps: int = 3) -> None:
    with Store.open(ws / DB_FILE) as store:
        store.upsert_round(Round(n=1, status="done", stage="done", metrics={
            "composition": {"seed": 8}, "grpo": {"steps": 2},
            "eval": {"heldout": 0.125, "bfcl": {"simple": 0.25, "all": 0.25}}}))
        store.upsert_round(Round(n=2, status="done", stage="done", metrics={"composition": {"seed": 8},
                                                                            "grpo": {"steps": round_two_steps}}))
        store.add_train_step(1, "grpo", 1, {"reward": 0.125, "frac_reward_zero_std": 0.25})


def _section(text: str, title: str) -> str:
    """The text of one `##`/`###` section, up to the next heading."""
    after = text.split(title + "\n", 1)[1]
    return after.split("\n#", 1)[0]


@pytest.fixture(scope="module")
def loop_report(tmp_path_factory) -> tuple[Path, str]:
    """A loop workspace without a static baseline, and its report (written once: plots take time)."""
    ws = _init(CliRunner(), tmp_path_factory.mktemp("loop") / "ws", "loopws")
    _fill_loop(ws)
    return ws, write_report(ws).read_text()


@pytest.mark.slow
def test_the_report_compares_the_loop_with_the_static_baseline(tmp_path, runner):
    loop_ws = _init(runner, tmp_path / "ws", "loopws")
    _fill_loop(loop_ws)
    _fill_static(_init(runner, loop_ws / "static", "staticws"))
    path = write_report(loop_ws)
    assert path == loop_ws / "report.md"
    text = path.read_text()
    assert text.startswith("# LoopTool report: loopws\n")
    comparison = _section(text, "## Loop vs static")
    assert "| 1 | 25.0% | 12.5% | +12.5 pp | 50.0% | 25.0% | +25.0 pp |" in comparison
    assert "| 2 | 37.5% | - | - | - | - | - |" in comparison  # the static round has no evaluation
    assert "| 3 |" not in comparison  # round 3 is only assembled
    assert "not run" not in text
    static = text.split("## Static baseline, per round", 1)[1]
    assert "| 1 | done | 8 | 8 |" in static  # composition: seed, total
    assert "Verdicts" not in static
    signal = _section(text, "## GRPO steps and signal per round")
    assert "| Round | Arm | GRPO steps | frac_reward_zero_std (mean) | Reward (mean) |" in signal
    assert "| 1 | loop | 2 | 0.750 | 0.375 |" in signal and "| 1 | static | 2 | 0.250 | 0.125 |" in signal
    assert "| 2 | loop | 3 | 0.750 | 0.625 |" in signal and "| 2 | static | 3 | - | - |" in signal


@pytest.mark.slow
def test_arms_whose_steps_differ_from_the_loops_are_not_compared(tmp_path, runner):
    loop_ws = _init(runner, tmp_path / "ws", "loopws")
    _fill_loop(loop_ws)
    _fill_static(_init(runner, loop_ws / "static", "staticws"), round_two_steps=5)
    arm = _init(runner, loop_ws / "no-edde", "noeddews")
    (arm / "arm.json").write_text('{"arm": "no-edde"}')
    _fill_static(arm)
    text = write_report(loop_ws).read_text()
    assert _section(text, "## Loop vs static").strip() == (
        "Not compared: in round 2 the static arm spent 5 GRPO steps and the loop 3; arms are compared only at "
        "equal steps.")
    comparison = _section(text, "## Loop vs no-edde")
    assert "| Round | Held-out loop | Held-out no-edde | Δ | BFCL loop | BFCL no-edde | Δ |" in comparison
    assert "| 1 | 25.0% | 12.5% | +12.5 pp | 50.0% | 25.0% | +25.0 pp |" in comparison
    assert "## Arm no-edde, per round" in text


def test_the_loop_tables_hold_each_rounds_numbers(loop_report):
    _, text = loop_report
    loop = text.split("## Loop, per round", 1)[1]
    composition = _section(loop, "### Data composition")
    assert "| Round | Status | fresh_seed | corrected | error | both_ok | expanded | boundary | Total |" in composition
    assert "| 3 | pending (data only) | 0 | 0 | 2 | 0 | 0 | 2 | 4 |" in composition
    assert "| 1 | 3 | 2 | 3 | 1.750 |" in _section(loop, "### Probe categories")
    verdicts = _section(loop, "### Verdicts")
    assert ("| Round | LABEL_WRONG | PRED_WRONG | BOTH_OK | BOTH_WRONG | by rule (no judge asked) | judge gave no "
            "answer | decided by a person | LABEL_WRONG on exact labels |") in verdicts
    assert "| 1 | 1 | 2 | 0 | 0 | 1 | 0 | 2 | 1 |" in verdicts and "| 2 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |" in verdicts
    assert "| 1 | 3 | 2 | 2 | 1 | 3/8 (37.5%) |" in _section(loop, "### Expansion")
    evaluation = _section(loop, "### Evaluation")
    assert "| Round | Held-out [95% CI] | BFCL multiple | BFCL simple | BFCL all [95% CI] |" in evaluation
    assert "| 1 | 25.0% | - | 50.0% | 50.0% |" in evaluation
    training = _section(loop, "### Training")
    assert "| 1 | 0.250 | 0.500 | 0.750 | steps 2, seconds 42.5 | - |" in training
    assert "| 2 | 0.500 | 0.750 | 0.750 | steps 3 | - |" in training
    stages = _section(loop, "### Stage wall time (s)")
    assert "| Round | train | probe | Total |" in stages and "| 1 | 30.0 | 5.0 | 35.0 |" in stages
    assert "| 3 |" not in evaluation + training + stages


def test_every_plot_is_a_png_linked_from_the_report(loop_report):
    loop_ws, text = loop_report
    for name in ("reward_per_step.png", "accuracy_per_round.png", "data_composition.png", "verdicts.png",
                 "expansion_yield.png"):
        assert name in PLOTS and f"](report/{name})" in text
        assert (loop_ws / "report" / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_without_a_static_workspace_the_report_says_how_to_run_it(loop_report):
    loop_ws, text = loop_report
    assert "The static baseline was not run" in text
    assert f"`looptool loop --static -w {loop_ws}`" in text
    assert "| 1 | 25.0% | - | - | 50.0% | - | - |" in text
    assert "## Static baseline" not in text


def test_a_workspace_without_rounds_still_gets_a_report_and_plots(workspace, monkeypatch):
    from matplotlib.figure import Figure

    saved: dict[str, list[str]] = {}  # plot file -> the texts drawn in its axes
    real_savefig = Figure.savefig

    def savefig(fig, path, **kwargs):
        saved[Path(path).name] = [t.get_text() for ax in fig.axes for t in ax.texts]
        return real_savefig(fig, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    text = write_report(workspace).read_text()
    assert "No rounds yet" in text
    assert "_No data yet._" in _section(text, "## Loop vs static")
    assert saved == {name: ["no data yet"] for name in PLOTS}
    for name in PLOTS:
        assert (workspace / "report" / name).read_bytes().startswith(b"\x89PNG")


def test_a_directory_that_is_not_a_workspace_raises_the_config_error(tmp_path):
    with pytest.raises(ConfigError, match="looptool init"):
        write_report(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere" / "report.md").exists()


def _fill_evaluated_loop(ws: Path, *, warm_start: bool = True) -> None:
    """Rounds 1 and 2 (round 2 evaluated by the evaluate node, with its run ids), and the base model's and
    the warm start's runs of `looptool eval`: the base lacks one of round 2's held-out entries, the warm
    start has one more, and only the base has a BFCL run."""
    def run(store, run_id, suite, round, results, adapter=None):
        store.upsert_eval_run(run_id, suite=suite, model="m", adapter=adapter, round=round, settings={})
        store.add_eval_results(run_id, [{"entry_id": e, "category": c, "passed": ok} for e, c, ok in results])

    heldout = [f"h{k}" for k in range(4)]
    with Store.open(ws / DB_FILE) as store:
        store.upsert_round(Round(n=1, status="done", stage="done", metrics={"eval": {"heldout": 0.25}}))
        store.upsert_round(Round(n=2, status="done", stage="done", metrics={"eval": {
            "heldout": 0.75, "heldout_run": "eval_r2", "bfcl": {"simple": 1.0, "all": 1.0}, "bfcl_run": "bfcl_r2",
            "acebench": {"special_irrelevant": 0.5, "normal": None, "special": 0.5, "all": 0.5},
            "acebench_run": "ace_r2"}}))
        run(store, "eval_r2", "heldout", 2, [(e, "single/call", k < 3) for k, e in enumerate(heldout)])
        run(store, "ace_r2", "acebench", 2, [(f"special_irrelevant_{k}", "special_irrelevant", k == 0) for k in range(2)])
        run(store, "ace_base", "acebench", 0, [("special_irrelevant_0", "special_irrelevant", False),
                                               ("normal_atom_bool_0", "normal_atom_bool", True)])
        run(store, "bfcl_r2", "bfcl", 2, [(f"simple_{k}", "simple", True) for k in range(2)])
        run(store, "eval_base", "heldout", 0, [(e, "single/call", k == 0) for k, e in enumerate(heldout[:3])])
        run(store, "bfcl_base", "bfcl", 0, [(f"simple_{k}", "simple", k == 0) for k in range(4)])
        if warm_start:
            run(store, "eval_warm", "heldout", None, [(e, "single/call", k < 2) for k, e in enumerate(heldout)]
                + [("h9", "single/call", True)], adapter=str(ws / "adapters" / "round-1-sft"))


def test_the_base_model_and_the_warm_start_are_rows_and_points_of_the_report(tmp_path, runner, monkeypatch):
    from matplotlib.figure import Figure

    from looptool.report import accuracy_series, collect, collect_references, plot_accuracy_per_round, render_markdown

    ws = _init(runner, tmp_path / "ws", "loopws")
    _fill_evaluated_loop(ws)
    loop = collect(ws)
    refs = collect_references(ws, loop)
    text = render_markdown(ws, loop, [], refs)
    evaluation = _section(text.split("## Loop, per round", 1)[1], "### Evaluation")
    assert ("| Round | Held-out [95% CI] | BFCL simple | BFCL all [95% CI] | ACEBench Normal | ACEBench Special | "
            "ACEBench all [95% CI] |") in evaluation
    # Counted on round 2's entries: the base on 3 of its 4 held-out entries, on 2 BFCL entries of its 4, and on
    # the one ACEBench entry of its two that round 2 also had; pooled figures with their 95% Wilson interval.
    assert "| base (round 0) | 33.3% [6.1, 79.2] | 50.0% | 50.0% [9.5, 90.5] | - | 0.0% | 0.0% [0.0, 79.3] |" in evaluation
    assert "| warm start | 50.0% [15.0, 85.0] | - | - | - | - | - |" in evaluation  # its extra entry h9 does not count
    assert "| 1 | 25.0% | - | - | - | - | - |" in evaluation  # no stored run behind it: no interval
    assert "| 2 | 75.0% [30.1, 95.4] | 100.0% | 100.0% [34.2, 100.0] | - | 50.0% | 50.0% [9.5, 90.5] |" in evaluation
    assert evaluation.index("| base (round 0) |") < evaluation.index("| warm start |") < evaluation.index("| 1 |")
    # The static arm not run; ACEBench's columns since round 2 was measured on it.
    assert "| base (round 0) | 33.3% | - | - | 50.0% | - | - | 0.0% | - | - |" in _section(text, "## Loop vs static")
    assert "| 2 | 75.0% | - | - | 100.0% | - | - | 50.0% | - | - |" in _section(text, "## Loop vs static")
    from looptool.report import comparison_table

    _fill_static(_init(runner, ws / "static", "staticws"))
    both = comparison_table(loop, collect(ws / "static", "static"), refs)
    assert "| base (round 0) | 33.3% | 33.3% | - | 50.0% | 50.0% | - |" in both  # where both arms start
    assert "| warm start | 50.0% | 50.0% | - | - | - | - |" in both
    assert ("- base (round 0)'s heldout run has 3 of the 4 entries round 2 was evaluated on; it is counted on "
            "those") in text
    # The plot: every line starts at the base (x 0) and the warm start (x 0.5), then the rounds.
    held = next(points for _, suite, points in accuracy_series([loop], refs) if suite == "held-out")
    assert [(x, round(y, 1)) for x, y in held] == [(0.0, 33.3), (0.5, 50.0), (1.0, 25.0), (2.0, 75.0)]
    ticks: list[str] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **kw: ticks.extend(
        t.get_text() for t in fig.axes[0].get_xticklabels()))
    plot_accuracy_per_round([loop], tmp_path / "accuracy.png", refs)
    assert ticks[:3] == ["base", "warm start", "1"] and "2" in ticks


def test_a_warm_start_not_measured_says_how_to_measure_it(tmp_path, runner):
    from looptool.report import collect, collect_references, render_markdown

    ws = _init(runner, tmp_path / "ws", "loopws")
    _fill_evaluated_loop(ws, warm_start=False)
    loop = collect(ws)
    text = render_markdown(ws, loop, [], collect_references(ws, loop))
    assert "| warm start |" not in text and "warm start: not measured" not in text  # none was trained
    (ws / "adapters" / "round-1-sft").mkdir(parents=True)
    text = render_markdown(ws, loop, [], collect_references(ws, loop))
    assert (f"- warm start: not measured; `looptool eval heldout -w {ws} --adapter {ws}/adapters/round-1-sft`"
            in text)
