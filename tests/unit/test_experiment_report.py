"""The experiment report, from stores filled by hand: a loop and a static arm with base, warm start,
per-round held-out and BFCL runs; then half-finished experiments, which must render what exists.

The fixture's numbers, chosen so that the report's statistics can be checked by hand: 20 held-out
items, h00-h11 labelled with calls and h12-h19 with no call; BFCL entries simple_0-4 and
irrelevance_0-2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import DB_FILE
from looptool.experiment_report import PLOTS, REPORT_FILE, machine_description, write_experiment_report
from looptool.schema import Round
from looptool.store import Store

ITEMS = [f"h{i:02d}" for i in range(20)]
CATEGORIES = {item: "templated_single/call" if i < 12 else "templated_single/text" for i, item in enumerate(ITEMS)}
TEXT = set(range(12, 20))  # the no-call items
BFCL_CATEGORIES = {f"simple_{i}": "simple" for i in range(5)} | {f"irrelevance_{i}": "irrelevance" for i in range(3)}


def _init(path: Path, name: str) -> Path:
    result = CliRunner().invoke(app, ["init", str(path), "--name", name])
    assert result.exit_code == 0, result.output
    return path


def _heldout(store: Store, run_id: str, right: set[int], *, round: int | None, adapter: str | None = None) -> None:
    store.upsert_eval_run(run_id, suite="heldout", model="policy", adapter=adapter, round=round, settings={})
    store.add_eval_results(run_id, [{"entry_id": item, "category": CATEGORIES[item], "passed": i in right}
                                    for i, item in enumerate(ITEMS)])


def _bfcl(store: Store, run_id: str, right: set[str], *, round: int | None, adapter: str | None = None) -> None:
    store.upsert_eval_run(run_id, suite="bfcl", model="policy", adapter=adapter, round=round, settings={})
    store.add_eval_results(run_id, [{"entry_id": entry, "category": category, "passed": entry in right}
                                    for entry, category in BFCL_CATEGORIES.items()])


def _round(store: Store, n: int, *, heldout_run: str | None = None, zero_std: list[float], losses: list[float],
           composition: dict[str, int]) -> None:
    evaluation = {"heldout_run": heldout_run} if heldout_run else {}
    store.upsert_round(Round(n=n, status="done", stage="done", metrics={
        "composition": composition, "grpo": {"steps": len(zero_std)}, "eval": evaluation,
        "stage_seconds": {"train": 10.0 * n, "evaluate": 2.5}}))
    for step, (frac, loss) in enumerate(zip(zero_std, losses), start=1):
        store.add_train_step(n, "grpo", step, {"reward": 0.5, "frac_reward_zero_std": frac, "loss": loss})


def _fill_references(ws: Path) -> None:
    """Base and warm start, on both suites, in the loop's workspace."""
    warm = str((ws / "adapters" / "round-1-sft").resolve())
    with Store.open(ws / DB_FILE) as store:
        _heldout(store, "base-h", {12, 13, 14, 15}, round=0)  # 4/20, no call right
        _heldout(store, "warm-h", {0, 1, 2, *TEXT}, round=None, adapter=warm)  # 11/20
        _bfcl(store, "base-b", {"simple_0", "irrelevance_0", "irrelevance_1", "irrelevance_2"}, round=0)
        _bfcl(store, "warm-b", {"simple_0", "simple_1", "irrelevance_0", "irrelevance_1"}, round=None, adapter=warm)


def _fill_loop(ws: Path) -> None:
    with Store.open(ws / DB_FILE) as store:
        _round(store, 1, zero_std=[0.5, 0.5], losses=[0.1, 0.2], composition={"fresh_seed": 8})
        _heldout(store, "loop-h1", {0, 1, 2, 3, 4, *TEXT}, round=1)  # 13/20
        _round(store, 2, heldout_run="loop-h2", zero_std=[0.25, 0.25], losses=[0.1, 0.0],
               composition={"error": 3, "expanded": 5})
        _heldout(store, "loop-h2", {*range(11), *TEXT}, round=2)  # 19/20: all but h11
        # Another run of round 2 (other settings, more wrong): the one the round's metrics name wins.
        _heldout(store, "loop-h2-other", set(), round=2)
        _bfcl(store, "loop-b2", {"simple_0", "simple_1", "simple_2", "simple_3", "irrelevance_0", "irrelevance_1",
                                 "irrelevance_2"}, round=2)


def _fill_static(ws: Path) -> None:
    with Store.open(ws / DB_FILE) as store:
        _round(store, 1, zero_std=[0.5, 0.5], losses=[0.1, 0.2], composition={"fresh_seed": 8})
        _heldout(store, "static-h1", {0, 1, 2, 3, 4, *TEXT}, round=1)
        _round(store, 2, zero_std=[0.5, 0.75], losses=[0.3, 0.3], composition={"seed": 8})
        _heldout(store, "static-h2", {0, 1, 11, *TEXT}, round=2)  # 11/20: h11, which the loop misses
        _bfcl(store, "static-b2", {"simple_4", "irrelevance_0"}, round=2)


def _section(text: str, title: str) -> str:
    """The text of one `##`/`###` section, up to the next heading."""
    return text.split(title + "\n", 1)[1].split("\n#", 1)[0]


def _row(text: str, start: str) -> str:
    """The table row that starts with `start`."""
    return next(line for line in text.splitlines() if line.startswith(start))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> tuple[Path, str]:
    """A finished experiment: loop and static, two rounds each; its report (written once: plots take time)."""
    ws = _init(tmp_path_factory.mktemp("exp") / "ws", "expws")
    _fill_references(ws)
    _fill_loop(ws)
    _fill_static(_init(ws / "static", "expws-static"))
    return ws, write_experiment_report(ws, seed_label="7").read_text()


def test_the_header_names_the_workspace_seed_arms_rounds_steps_and_machine(experiment):
    ws, text = experiment
    assert text.startswith("# LoopTool experiment: expws\n")
    header = text.split("## Acceptance", 1)[0]
    assert "- Seed: 7\n" in header
    assert "- Arms: loop, static\n" in header
    assert "- Rounds trained: loop rounds 1-2, static rounds 1-2\n" in header
    assert "GRPO steps per round (the loop's; every arm spends the same): 2 in each round" in header
    assert "- Machine (where this report was written): " in header and "avx512_bf16" in header


def test_heldout_accuracy_has_counts_and_wilson_intervals_per_part(experiment):
    _, text = experiment
    table = _section(text, "## Held-out exact match")
    assert "| Model | Round | all held-out | label is a call | label is no call |" in table
    # 19/20: centre (0.95 + 0.09604) / 1.19208 = 0.87749, half 1.96 * sqrt(0.002375 + 0.002401) / 1.19208 = 0.11363
    assert _row(table, "| loop | 2 |") == (
        "| loop | 2 | 95.0% (19/20) [76.4, 99.1] | 91.7% (11/12) [64.6, 98.5] | 100.0% (8/8) [67.6, 100.0] |")
    # 0/12 right: [0, 3.8416/15.8416] = [0, 24.25008]
    assert _row(table, "| base | 0 |") == (
        "| base | 0 | 20.0% (4/20) [8.1, 41.6] | 0.0% (0/12) [0.0, 24.3] | 50.0% (4/8) [21.5, 78.5] |")
    assert _row(table, "| warm start | SFT |").startswith("| warm start | SFT | 55.0% (11/20) ")
    assert _row(table, "| static | 2 |").startswith("| static | 2 | 55.0% (11/20) ")
    assert "![Held-out exact match per round, 95% Wilson intervals](experiment_heldout.png)" in table


def test_the_final_rounds_are_paired_with_mcnemar(experiment):
    _, text = experiment
    final = _section(text, "### Final round vs the loop")
    assert "| A vs B | Items | n | A | B | only A | only B | Δ (points) | McNemar p | dropped |" in final
    # Only the loop: h02-h10 (9); only static: h11 (1). p = 2 * (1 + 10) / 1024 = 0.021484375.
    assert _row(final, "| loop vs static, round 2 | all held-out |") == (
        "| loop vs static, round 2 | all held-out | 20 | 95.0% (19/20) | 55.0% (11/20) | 9 | 1 | +40.0 | 0.0215 | 0 |")
    assert _row(final, "| loop vs static, round 2 | label is a call |") == (
        "| loop vs static, round 2 | label is a call | 12 | 91.7% (11/12) | 25.0% (3/12) | 9 | 1 | +66.7 | 0.0215 "
        "| 0 |")
    # Against the warm start: only the loop h03-h10 (8), none the other way: p = 2 / 256.
    assert _row(final, "| loop round 2 vs warm start | all held-out |") == (
        "| loop round 2 vs warm start | all held-out | 20 | 95.0% (19/20) | 55.0% (11/20) | 8 | 0 | +40.0 | 0.0078 "
        "| 0 |")
    assert "| loop round 2 vs base | all held-out | 20 | 95.0% (19/20) | 20.0% (4/20) | 15 | 0 | +75.0 |" in final
    per_round = _section(text, "### Loop vs static, per round")
    assert _row(per_round, "| round 1 | all held-out |") == (
        "| round 1 | all held-out | 20 | 65.0% (13/20) | 65.0% (13/20) | 0 | 0 | +0.0 | 1.0000 | 0 |")
    assert "| round 2 | all held-out | 20 | 95.0% (19/20) | 55.0% (11/20) | 9 | 1 | +40.0 | 0.0215 | 0 |" in per_round


def test_bfcl_per_category_with_the_paired_test(experiment):
    _, text = experiment
    table = _section(text, "## BFCL-v3 subset")
    assert "| Model | simple | irrelevance | overall |" in table
    assert _row(table, "| loop (round 2) |") == (
        "| loop (round 2) | 80.0% (4/5) [37.6, 96.4] | 100.0% (3/3) [43.8, 100.0] | 87.5% (7/8) [52.9, 97.8] |")
    assert _row(table, "| base |").startswith("| base | 20.0% (1/5) ")
    assert _row(table, "| warm start |").startswith("| warm start | 40.0% (2/5) ")
    assert _row(table, "| static (round 2) |").startswith("| static (round 2) | 20.0% (1/5) ")
    paired = _section(text, "### Loop vs static, paired")
    assert "A = loop (round 2), B = static (round 2)" in paired
    # simple: 4 only loop, 1 only static: 2 * 6 / 32; overall 6 vs 1: 2 * 8 / 128.
    assert _row(paired, "| simple |") == "| simple | 5 | 80.0% (4/5) | 20.0% (1/5) | 4 | 1 | +60.0 | 0.3750 | 0 |"
    assert _row(paired, "| overall |") == "| overall | 8 | 87.5% (7/8) | 25.0% (2/8) | 6 | 1 | +62.5 | 0.1250 | 0 |"


def test_acebench_is_optional_and_shown_per_model_with_the_paired_test(experiment, tmp_path):
    shared, text = experiment
    assert "_Not run: `looptool experiment --acebench N`" in _section(text, "## ACEBench-en subset")
    assert "acebench" not in _section(text, "## Missing")  # optional: not missing
    ws = Path(shutil.copytree(shared, tmp_path / "ws"))  # the shared experiment stays as it is
    # Two Normal sub-categories (2 entries each) and one Special (2 entries); the loop passes 4 of 6.
    entries = {"normal_single_turn_single_function_0": "normal_single_turn_single_function",
               "normal_single_turn_single_function_1": "normal_single_turn_single_function",
               "normal_similar_api_0": "normal_similar_api", "normal_similar_api_1": "normal_similar_api",
               "special_irrelevant_0": "special_irrelevant", "special_irrelevant_1": "special_irrelevant"}

    def acebench(store: Store, run_id: str, right: set[str], *, round: int | None) -> None:
        store.upsert_eval_run(run_id, suite="acebench", model="policy", adapter=None, round=round, settings={})
        store.add_eval_results(run_id, [{"entry_id": e, "category": c, "passed": e in right} for e, c in entries.items()])

    with Store.open(ws / DB_FILE) as store:
        acebench(store, "loop-a2", {"normal_single_turn_single_function_0", "normal_similar_api_0",
                                    "normal_similar_api_1", "special_irrelevant_0"}, round=2)
    with Store.open(ws / "static" / DB_FILE) as store:
        acebench(store, "static-a2", {"special_irrelevant_0"}, round=2)
    text = write_experiment_report(ws, seed_label="7").read_text()
    section = _section(text, "## ACEBench-en subset")
    assert "| Model | Normal | Special | entries |" in section
    # Normal: mean of 50% and 100%; Special 50%; pooled 4/6.
    assert _row(section, "| loop (round 2) |").startswith("| loop (round 2) | 75.0% | 50.0% | 66.7% (4/6) [")
    assert _row(section, "| static (round 2) |").startswith("| static (round 2) | 0.0% | 50.0% | 16.7% (1/6) [")
    assert "Loop (round 2) vs static (round 2) on the same entries:" in section
    assert "| 6 | 66.7% (4/6) | 16.7% (1/6) | 3 | 0 | +50.0 | 0.2500 | 0 |" in section


def test_grpo_signal_composition_and_stage_times_per_round_and_arm(experiment):
    _, text = experiment
    grpo = _section(text, "## GRPO signal")
    assert "| 2 | loop | 2 | 2 | 0.500 | 0.250 | 50.0% (1/2) |" in grpo
    assert "| 2 | static | 2 | 2 | 0.500 | 0.625 | 100.0% (2/2) |" in grpo
    for name in ("experiment_zero_std.png", "experiment_reward.png"):
        assert f"]({name})" in grpo
    composition = _section(text, "## Data composition per round")
    assert "| Round | Arm | fresh_seed | error | expanded | seed | Total |" in composition
    assert "| 2 | loop | 0 | 3 | 5 | 0 | 8 |" in composition and "| 2 | static | 0 | 0 | 0 | 8 | 8 |" in composition
    times = _section(text, "## Wall time per stage (s)")
    assert "| Round | Arm | train | evaluate | Total |" in times and "| 2 | static | 20.0 | 2.5 | 22.5 |" in times


def test_the_acceptance_block_states_each_target_with_numbers(experiment):
    _, text = experiment
    acceptance = _section(text, "## Acceptance")
    assert _row(acceptance, "| Loop final held-out >= static + 5 points") == (
        "| Loop final held-out >= static + 5 points, McNemar p < 0.05 | round 2: loop 95.0% (19/20) vs static "
        "55.0% (11/20), +40.0 points, p = 0.0215 | **holds** |")
    assert _row(acceptance, "| Loop final held-out >= 50% (all held-out)").endswith(
        "| round 2: 95.0% (19/20) [76.4, 99.1] | **holds** |")
    assert _row(acceptance, "| Loop final held-out >= 40% (label is a call)").endswith("| **holds** |")
    assert _row(acceptance, "| Loop's mean frac_reward_zero_std").endswith(
        "| round 2: 0.250 vs 0.625 | **holds** |")
    assert _row(acceptance, "| Loop BFCL simple >= 30%").endswith("| round 2: 80.0% (4/5) [37.6, 96.4] | **holds** |")
    assert "Nothing: every run looked for was found." in _section(text, "## Missing")


def test_every_plot_is_a_png_next_to_the_report(experiment):
    ws, _ = experiment
    for name in PLOTS:
        assert (ws / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (ws / REPORT_FILE).is_file()


def test_a_half_finished_experiment_says_what_is_not_measured(tmp_path):
    """Only the loop's first round is evaluated: no static arm, no warm start, no BFCL anywhere."""
    ws = _init(tmp_path / "ws", "halfws")
    with Store.open(ws / DB_FILE) as store:
        _heldout(store, "base-h", {12, 13}, round=0)
        _round(store, 1, zero_std=[0.5], losses=[0.0], composition={"fresh_seed": 8})
        _heldout(store, "loop-h1", {0, *TEXT}, round=1)  # 9/20
        store.upsert_round(Round(n=2, status="pending", metrics={"composition": {"error": 2}}))
    text = write_experiment_report(ws).read_text()
    assert "- Seed: 0 (`[train] seed`)" in text
    acceptance = _section(text, "## Acceptance")
    assert _row(acceptance, "| Loop final held-out >= static + 5 points").endswith(
        "| static has no held-out run of round 1 | not measured |")
    assert _row(acceptance, "| Loop final held-out >= 50% (all held-out)").endswith(
        "| round 1: 45.0% (9/20) [25.8, 65.8] | **does not hold** |")
    assert _row(acceptance, "| Loop's mean frac_reward_zero_std").endswith("| not measured |")
    assert _row(acceptance, "| Loop BFCL simple >= 30%").endswith("| no run | not measured |")
    assert "_Not measured: the static arm was not run._" in _section(text, "### Loop vs static, per round")
    assert "_Not measured: the loop has no BFCL run._" in _section(text, "### Loop vs static, paired")
    assert "_No data yet._" in _section(text, "## BFCL-v3 subset")
    missing = _section(text, "## Missing")
    for line in ("- warm start: no heldout run in `ws`", "- base: no bfcl run in `ws`", "- loop: no bfcl run of any round",
                 f"- static: not run (no workspace at `{ws / 'static'}`)"):
        assert line in missing
    assert "| 2 |" not in _section(text, "## GRPO signal")  # round 2 is only assembled
    for name in PLOTS:
        assert (ws / name).read_bytes().startswith(b"\x89PNG")


def test_a_static_arm_behind_the_loop_is_not_compared_at_the_final_round(tmp_path):
    ws = _init(tmp_path / "ws", "lagws")
    _fill_loop(ws)
    static = _init(ws / "static", "lagws-static")
    with Store.open(static / DB_FILE) as store:
        _round(store, 1, zero_std=[0.5, 0.5], losses=[0.1, 0.2], composition={"fresh_seed": 8})
        _heldout(store, "static-h1", {0, *TEXT}, round=1)
    text = write_experiment_report(ws).read_text()
    acceptance = _section(text, "## Acceptance")
    assert _row(acceptance, "| Loop final held-out >= static + 5 points").endswith(
        "| static has no held-out run of round 2 | not measured |")
    assert _row(acceptance, "| Loop's mean frac_reward_zero_std").endswith(
        "| round 2: no logged steps in both arms | not measured |")
    # static's final round (1) against the loop's round 1: only the loop h01-h04.
    final = _section(text, "### Final round vs the loop")
    assert "| loop vs static, round 1 | all held-out | 20 | 65.0% (13/20) | 45.0% (9/20) | 4 | 0 | +20.0 | 0.1250 |" \
        in final
    missing = _section(text, "## Missing")
    assert "- static: no bfcl run of any round" in missing and "- base: no heldout run in `ws`" in missing


def test_a_workspace_without_rounds_still_gets_the_report(workspace):
    text = write_experiment_report(workspace).read_text()
    assert "- Rounds trained: loop none" in text
    assert "GRPO steps per round (the loop's; every arm spends the same): none recorded yet" in text
    assert _section(text, "## Held-out exact match").count("_No data yet._") == 1


def test_machine_description_reads_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu avx512f avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: Example CPU 9000\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert machine_description(cpuinfo).startswith("Example CPU 9000, ")
    assert machine_description(cpuinfo).endswith(", avx512_bf16 present")
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu avx2\n")
    assert machine_description(cpuinfo).endswith(", avx512_bf16 absent")
    assert machine_description(tmp_path / "none").endswith(", avx512_bf16 unknown")
