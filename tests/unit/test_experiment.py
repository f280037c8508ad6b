"""`looptool experiment`'s orchestration: the steps, their order, resuming, the seed, the arms.
The commands themselves are tested on their own; here they are recorded, not run."""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import pytest

from looptool import experiment
from looptool.config import load_config
from looptool.experiment import ExperimentError, parse_arms, run_experiment
from looptool.loop.arms import ArmError


@pytest.fixture
def recorded(monkeypatch):
    """Every `looptool` command the experiment runs, with the exit code to give (0 unless set)."""
    calls: list[list[str]] = []
    fail = {"at": None}

    real_run = subprocess.run

    def fake_run(cmd, *a, **kw):
        if list(cmd[1:3]) != ["-m", "looptool.cli"]:  # not ours (e.g. matplotlib's first font scan runs fc-list)
            return real_run(cmd, *a, **kw)
        args = cmd[3:]  # python -m looptool.cli ...
        calls.append(args)
        rc = 3 if fail["at"] is not None and len(calls) == fail["at"] else 0
        return SimpleNamespace(returncode=rc)

    monkeypatch.setattr(subprocess, "run", fake_run)
    return SimpleNamespace(calls=calls, fail=fail)


def test_arms_parse_loop_first_each_once():
    assert parse_arms("static,loop") == ["loop", "static"]
    assert parse_arms("no-edde,static,static") == ["loop", "static", "no-edde"]
    with pytest.raises(ArmError):
        parse_arms("loop,sttic")


def test_a_run_makes_the_workspace_runs_every_step_then_reports(tmp_path, recorded):
    ws = tmp_path / "exp"
    report = run_experiment(ws, seed=7, echo=lambda line: None)
    config = load_config(ws)
    assert config.train.seed == 7 and config.loop.round_size == experiment.EXPERIMENT_SIZES["loop"]["round_size"]
    commands = [" ".join(c[:2]) for c in recorded.calls]
    assert commands[:3] == ["tools synth", "seed -w", "seed -w"]
    assert ["--templated", "--n", str(experiment.TEMPLATED), "--seed", "7"] == recorded.calls[2][3:]
    loop_at = next(i for i, c in enumerate(recorded.calls) if c[:1] == ["loop"] and "loop" in c)
    static_at = next(i for i, c in enumerate(recorded.calls) if c[:1] == ["loop"] and "static" in c)
    sft_at = next(i for i, c in enumerate(recorded.calls) if c[:2] == ["train", "sft"])
    assert sft_at < loop_at < static_at  # one warm start, the loop first: the arms spend its steps
    bfcl = [c for c in recorded.calls if c[:2] == ["eval", "bfcl"]]
    assert len(bfcl) == 4 and all(c[c.index("--limit") + 1] == str(experiment.BFCL_LIMIT) for c in bfcl)
    assert any(str(ws / "static") in c for c in bfcl)  # each arm's final adapter in its own workspace
    state = json.loads((ws / experiment.STATE_FILE).read_text())
    assert state["seed"] == 7 and len(state["steps"]) == len(recorded.calls)
    assert report == ws / "experiment.md" and "Wall time per experiment step" in report.read_text()


@pytest.mark.slow
def test_acebench_is_asked_of_every_model_only_when_wanted(tmp_path, recorded):
    run_experiment(tmp_path / "off", seed=7, echo=lambda line: None)
    assert not [c for c in recorded.calls if c[:2] == ["eval", "acebench"]]
    recorded.calls.clear()
    ws = tmp_path / "on"
    run_experiment(ws, seed=7, acebench_limit=3, echo=lambda line: None)
    order = [" ".join(c[:2]) + (" --adapter" if "--adapter" in c else "") for c in recorded.calls]
    acebench = [c for c in recorded.calls if c[:2] == ["eval", "acebench"]]
    assert len(acebench) == 4 and all(c[c.index("--limit") + 1] == "3" for c in acebench)
    assert all(c[c.index("--categories") + 1] == "normal,special" for c in acebench)
    # base, warm start, then each arm's final round right after its BFCL subset (its server still up)
    assert order.index("eval acebench") == order.index("eval bfcl") + 1
    assert order.index("eval acebench --adapter") == order.index("eval bfcl --adapter") + 1
    arm_runs = [c for c in acebench if "--round" in c]
    assert [c[c.index("-w") + 1] for c in arm_runs] == [str(ws), str(ws / "static")]
    assert all(recorded.calls[recorded.calls.index(c) - 1][:2] == ["eval", "bfcl"] for c in arm_runs)


def test_a_failed_step_stops_and_a_rerun_goes_on_from_it(tmp_path, recorded):
    ws = tmp_path / "exp"
    recorded.fail["at"] = 6  # the SFT warm start
    with pytest.raises(ExperimentError, match="SFT warm start.*--seed 0"):
        run_experiment(ws, echo=lambda line: None)
    assert recorded.calls[-1][:2] == ["train", "sft"]
    recorded.fail["at"] = None
    recorded.calls.clear()
    run_experiment(ws, echo=lambda line: None)
    assert recorded.calls[0][:2] == ["train", "sft"]  # the five steps before it are not run again
    recorded.calls.clear()
    run_experiment(ws, echo=lambda line: None)
    assert recorded.calls == []  # everything done: only the report is written again


def test_another_seed_in_the_same_workspace_is_refused(tmp_path, recorded):
    ws = tmp_path / "exp"
    run_experiment(ws, seed=1, echo=lambda line: None)
    with pytest.raises(ExperimentError, match="seed 1"):
        run_experiment(ws, seed=2, echo=lambda line: None)
