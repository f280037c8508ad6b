"""The store's reads for the TUI and the shaping of their rows, on the fixture workspace."""

from __future__ import annotations

from looptool.config import DB_FILE, load_config
from looptool.loop.control import review_pending
from looptool.schema import Round, RoundMetrics, Verdict
from looptool.store import Store
from looptool.tui.data import (
    ROUND_COLUMNS,
    accuracy_series,
    call_groups,
    current_round,
    other_answer,
    reward_series,
    round_cells,
    stage_progress,
    usage_text,
)
from tests.tui.tui_workspace import NOW


def test_sample_page_filters_counts_and_pages(built_workspace):
    ws, ids = built_workspace
    with Store.open(ws / DB_FILE) as store:
        rows, total = store.sample_page(limit=5)
        assert total == 14 and len(rows) == 5
        rest, again = store.sample_page(limit=5, offset=10)
        assert again == 14 and len(rest) == 4
        assert not {r["id"] for r in rows} & {r["id"] for r in rest}
        assert store.sample_page(origin="expanded")[1] == 1
        assert store.sample_page(round_added=2)[1] == 2
        assert store.sample_page(scenario="parallel")[1] == 2
        assert store.sample_page(category="failed", probe_round=2)[1] == 3
        assert store.sample_page(category="failed", probe_round=1)[1] == 5
        assert store.sample_page(verdict="BOTH_WRONG")[1] == 1
        assert store.sample_page(tool="get_weather")[1] == 6
        assert store.sample_page(search="OSLO")[1] == 1  # case-insensitive
        assert store.sample_page(search="no such text")[1] == 0
        assert store.sample_page(split="heldout")[1] == 2 and store.sample_page(split="train")[1] == 12
        assert store.sample_page(search="expanded")[1] == 1  # the origin
        assert store.sample_page(search="missing_arg")[1] == 1  # the scenario
        (oslo,), _ = store.sample_page(search="Oslo?")
        assert oslo["id"] == ids["oslo"] and oslo["category"] == "mastered" and oslo["dialogue_id"] == "d_weather"
        (parent,), _ = store.sample_page(verdict="PRED_WRONG", probe_round=1, search="Paris")
        assert parent["verdict"] == "PRED_WRONG"
        assert store.sample_filter_options() == {"rounds": [0, 2], "origins": ["corrected", "expanded", "seed"],
                                                 "scenarios": ["missing_argument", "parallel", "single"],
                                                 "probe_rounds": [1, 2]}


def test_round_activity_and_stage_progress(built_workspace):
    ws, _ = built_workspace
    config = load_config(ws)
    with Store.open(ws / DB_FILE) as store:
        rounds = store.rounds()
        activity = store.round_activity(2)
        marks = store.activity_marks()
        assert store.activity_marks() == marks  # nothing changed, same fingerprint
    assert activity == {"train_steps": 3, "sft_steps": 0, "probes": 5, "failed": 3, "verdicts": 3, "errors": 2,
                        "expansions": 0, "eval_results": 0}
    now = current_round(rounds)
    assert now.n == 2
    progress = stage_progress(now, activity, config, NOW)
    assert (progress.stage, progress.done, progress.total) == ("verify", 3, 3)
    assert round(progress.per_minute, 2) == 0.3  # 3 verdicts in the 10 minutes since the stage began
    assert "3/3 verdicts" in progress.label
    probing = stage_progress(now.model_copy(update={"stage": "probe"}), activity, config, NOW)
    assert (probing.done, probing.total) == (5, 7)  # probes of the round's 7 samples
    expanding = stage_progress(now.model_copy(update={"stage": "expand"}), activity, config, NOW)
    assert (expanding.done, expanding.total) == (0, 2 * config.loop.expansions_per_error)  # PRED_ and LABEL_WRONG
    finished = stage_progress(rounds[0], {}, config, NOW)
    assert finished.per_minute is None and finished.label == "round 1 · done"  # no rate, "done" said once
    failed = stage_progress(rounds[0].model_copy(update={"status": "failed", "stage": "probe"}), {}, config, NOW)
    assert failed.label == "round 1 · probe (failed)"


def test_the_warm_start_counts_its_own_steps(built_workspace):
    config = load_config(built_workspace[0])
    sft = config.train.sft_max_steps
    training = Round(n=1, status="running", stage="train", metrics={"stage_started": "2026-01-02T03:40:00.000+00:00"})
    warm = stage_progress(training, {"sft_steps": 12, "train_steps": 0}, config, NOW, warm_start=True)
    assert (warm.stage, warm.done, warm.total) == ("warm start (SFT)", 12, sft)
    assert warm.label == f"round 1 · warm start (SFT) · 12/{sft} steps · 1.7 min/step"  # 12 in 20 minutes
    # Due but no step logged yet (the model loads); or steps logged with no warm start due (train sft by hand).
    assert stage_progress(training, {}, config, NOW, warm_start=True).label.startswith(
        f"round 1 · warm start (SFT) · 0/{sft} steps")
    assert stage_progress(training, {"sft_steps": 3}, config, NOW).stage == "warm start (SFT)"
    # Not once GRPO has begun, or the warm start's summary is recorded, or with none due.
    assert stage_progress(training, {"sft_steps": 12, "train_steps": 1}, config, NOW, warm_start=True).stage == "train"
    done = training.model_copy(update={"metrics": RoundMetrics(sft={"steps": 12})})
    assert stage_progress(done, {"sft_steps": 12}, config, NOW, warm_start=True).stage == "train"
    assert stage_progress(training, {}, config, NOW).stage == "train"
    # GRPO's rate counts from the warm start's end (the stage began 20 minutes ago, the warm start ended 4 ago).
    grpo = training.model_copy(update={"metrics": RoundMetrics(
        stage_started="2026-01-02T03:40:00.000+00:00", sft={"steps": 12, "finished": "2026-01-02T03:56:00.000+00:00"})})
    assert stage_progress(grpo, {"sft_steps": 12, "train_steps": 2}, config, NOW).label.endswith(
        " steps · 2.0 min/step")
    assert stage_progress(grpo, {"sft_steps": 12, "train_steps": 0}, config, NOW).label.endswith(" steps")


def test_rates_slower_than_one_a_minute_say_minutes_each():
    from looptool.tui.data import StageProgress

    assert StageProgress(1, "probe", "running", 30, 40, 6.0, "probes").rate == " · 6.0 probes/min"
    assert StageProgress(1, "evaluate", "running", 1, 40, 0.25, "entries").rate == " · 4.0 min/entry"
    assert StageProgress(1, "train", "running", 0, 2, 0.0, "steps").rate == ""


def test_labels_of_a_round_that_waits_is_paused_or_stopped():
    from dataclasses import replace

    from looptool.tui.data import STOPPED, WAITING_FOR_REVIEW, StageProgress

    verify = StageProgress(2, "verify", "running", 7, 7, 1.0, "verdicts")
    assert replace(verify, status=WAITING_FOR_REVIEW).label == \
        "round 2 · verify · waiting for review: press 4 to review 7 verdicts"
    assert replace(verify, status="paused").label.startswith("round 2 · verify (paused after it as asked")
    assert replace(verify, status=STOPPED).label.startswith("round 2 · verify (stopped: no loop runs")


def test_the_widest_round_row_fits_120_columns():
    """Cell widths as the rounds table lays them out: the wider of header and cell, plus one column
    of padding each side; one column more for the table's scrollbar."""
    metrics = {"composition": {"corrected": 120, "error": 340, "both_ok": 60, "boundary": 80, "expanded": 510,
                               "fresh_seed": 200},
               "probe": {"mastered": 1000, "boundary": 1000, "failed": 1000}, "expansion": {"kept": 500, "rejected": 520},
               "stage_seconds": {"train": 40000.0}, "eval": {"heldout": 0.123, "bfcl": {"all": 0.456}}}
    widest = Round(n=12, status="running", stage="evaluate", metrics=metrics)
    cells = round_cells(widest, {"LABEL_WRONG": 120, "PRED_WRONG": 340, "BOTH_OK": 60, "BOTH_WRONG": 15})
    assert cells[4].startswith("1310: cor120 err340") and cells[4].endswith("…")
    width = sum(max(len(header), len(cell)) + 2 for header, cell in zip(ROUND_COLUMNS, cells, strict=True)) + 1
    assert width <= 120, (width, cells)


def test_round_cells_and_plot_series(built_workspace):
    ws, _ = built_workspace
    with Store.open(ws / DB_FILE) as store:
        rounds = store.rounds()
        steps = store.all_train_steps()
        verdicts = store.verdict_counts(1)
    cells = round_cells(rounds[0], verdicts)
    assert cells[:3] == ("1", "done", "done") and cells[-2:] == ("50.0%", "25.0%")
    assert cells[4] == "10: new10" and cells[6] == "1/2/1/1" and cells[7] == "1/3"
    rewards, starts = reward_series(steps)
    assert rewards == [0.1, 0.25, 0.3, 0.5, 0.4, 0.55, 0.6] and starts == [5]
    assert accuracy_series(rounds) == {"held-out": [(1, 50.0)], "BFCL": [(1, 25.0)]}


def test_the_accuracy_plot_starts_at_the_base_model_and_the_warm_start():
    from looptool.report import BASE_LABEL, WARM_START_LABEL, Reference
    from looptool.tui.data import latest_eval_runs

    rounds = [Round(n=1, status="done", metrics={"eval": {"heldout": 0.5, "heldout_run": "eval_a"}}),
              Round(n=2, status="done", metrics={"eval": {"heldout": 0.6, "heldout_run": "eval_b",
                                                          "bfcl": {"all": 0.2}, "bfcl_run": "eval_c"}}),
              Round(n=3, status="running")]
    assert latest_eval_runs(rounds) == {"heldout": (2, "eval_b"), "bfcl": (2, "eval_c")}
    refs = [Reference(BASE_LABEL, 0.0, heldout=0.25, bfcl={"all": 0.1}), Reference(WARM_START_LABEL, 0.5, heldout=0.4),
            Reference(WARM_START_LABEL, 0.5)]  # not measured: no point
    assert accuracy_series(rounds, refs) == {"held-out": [(0.0, 25.0), (0.5, 40.0), (1, 50.0), (2, 60.0)],
                                             "BFCL": [(0.0, 10.0), (2, 20.0)]}


def test_other_answer_flips_between_keeping_the_label_and_taking_the_prediction():
    def verdict(kind, override=None):
        return Verdict(sample_id="s", round=1, verdict=kind, human_override=override)

    assert other_answer(verdict("LABEL_WRONG")) == "PRED_WRONG"
    assert other_answer(verdict("PRED_WRONG")) == "LABEL_WRONG"
    assert other_answer(verdict("BOTH_OK")) == "LABEL_WRONG"
    assert other_answer(verdict("PRED_WRONG", "LABEL_WRONG")) is None  # back to the judge's own
    assert other_answer(verdict("BOTH_OK", "LABEL_WRONG")) == "PRED_WRONG"


def test_review_pending_reads_the_checkpoint(built_workspace, workspace):
    ws, _ = built_workspace
    assert review_pending(ws) == 2
    assert review_pending(workspace) is None  # a fresh workspace: no loop has run
    with Store.open(workspace / DB_FILE) as store:
        assert not store.has_table("checkpoints")  # and reading did not create LangGraph's tables


def test_agent_calls_are_grouped_by_verdict_and_expansion_attempt():
    def row(subject: str, key: str) -> dict:
        return {"subject": subject, "call_key": key}

    calls = [row("verdict:s_1:2", "v0.a0"), row("expansion:s_1:2:0", "check.a0"), row("verdict:s_1:2", "v1.a0"),
             row("expansion:s_1:2:0", "expand.a0"), row("expansion:s_1:2:1", "expand.a0"), row("other", "x")]
    groups = call_groups(calls, [{"round": 2, "slot": 0, "dimension": "values", "status": "kept"}])
    assert [(g.title, [c["call_key"] for c in g.calls]) for g in groups] == [
        ("verdict · round 2", ["v0.a0", "v1.a0"]),
        ("expansion · round 2 · slot 0 · values · kept", ["expand.a0", "check.a0"]),
        ("expansion · round 2 · slot 1", ["expand.a0"]), ("other", ["x"])]
    assert usage_text("m", 1234.4, 200, None) == "m · 1234 ms · 200+0 tok"
    assert usage_text(None, None, None, None) == ""
