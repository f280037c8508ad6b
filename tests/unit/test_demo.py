"""`looptool demo`'s plumbing: the workspace it makes, the commands it runs, and a failing step.
(The demo itself runs for about half an hour on 2 cores; docs/BENCHMARKS.md records a run.)"""

from __future__ import annotations

import subprocess

import pytest

from looptool import demo
from looptool.cli import app
from looptool.config import load_config


def test_demo_config_is_the_default_with_smaller_sizes():
    config = demo.demo_config("d")
    assert config.loop.rounds == 2 and config.loop.grpo_steps == demo.DEMO_SIZES["loop"]["grpo_steps"]
    assert config.train.sft_max_steps < 64 and config.train.learning_rate == 1e-5  # the rest is default


def test_every_demo_step_is_a_command_the_cli_knows(tmp_path, runner):
    for step in demo.demo_steps(tmp_path / "ws", rounds=2):
        result = runner.invoke(app, [*step.args, "--help"])
        assert result.exit_code == 0, (step.args, result.output)


@pytest.mark.slow
def test_the_demo_makes_its_workspace_runs_each_step_and_stops_at_a_failure(tmp_path, monkeypatch, runner):
    ran: list[list[str]] = []
    real_run = subprocess.run

    def looptool_only(answer):
        """A `subprocess.run` that answers the demo's own commands and runs any other (the report's
        first matplotlib import scans the system fonts with fc-list)."""
        def run(cmd, **kw):
            return answer(cmd) if list(cmd[1:3]) == ["-m", "looptool.cli"] else real_run(cmd, **kw)
        return run

    def fake_run(cmd):
        ran.append(cmd[3:])
        return subprocess.CompletedProcess(cmd, 3 if cmd[3:5] == ["train", "sft"] else 0)

    monkeypatch.setattr(demo.subprocess, "run", looptool_only(fake_run))
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["demo", "-w", str(ws)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"error: demo step 'SFT warm start' failed (exit 3); fix the cause and run 'looptool demo -w {ws}' "
        "again: it continues where it stopped")
    assert [a[:2] for a in ran] == [["tools", "synth"], ["seed", "-w"], ["seed", "-w"], ["eval", "heldout"],
                                    ["train", "sft"]]
    assert load_config(ws).loop.round_size == demo.DEMO_SIZES["loop"]["round_size"]

    monkeypatch.setattr(demo.subprocess, "run", looptool_only(lambda cmd: subprocess.CompletedProcess(cmd, 0)))
    result = runner.invoke(app, ["demo", "-w", str(ws)])
    assert result.exit_code == 0 and result.output.strip().splitlines()[-1] == f"report: {ws / 'report.md'}"
    # Nothing was trained (the commands were not run): the mechanism lines say so rather than fail.
    assert "GRPO signal: no GRPO step was logged" in result.output
    assert "base not measured, warm start not measured" in result.output
    assert (ws / "experiment.md").is_file()


@pytest.mark.parametrize("rounds", [1, 3])
def test_demo_rounds_reach_loop_and_baseline(tmp_path, rounds):
    steps = {s.title: s.args for s in demo.demo_steps(tmp_path, rounds)}
    assert steps["the loop"][-2:] == ["--rounds", str(rounds)]
    assert steps["static baseline"][-3:] == ["--static", "--rounds", str(rounds)]
