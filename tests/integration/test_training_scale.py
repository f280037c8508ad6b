"""Training the way larger set-ups do, on the CPU with the tiny model: curves reported to
TensorBoard (read back from its event files), and a GRPO stage run by two processes under
`accelerate launch` (DDP over gloo) that trains one policy and writes what one process writes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import load_config, save_config
from looptool.store import Store
from looptool.training import process
from tests.integration.test_training_trl import length_parity_reward, tiny_workspace
from tests.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def ws(tmp_path, tiny) -> Path:
    return tiny_workspace(tmp_path / "ws", tiny)


def set_train(ws: Path, **values) -> None:
    config = load_config(ws)
    config.train = config.train.model_copy(update=values)
    save_config(ws, config)


def test_tensorboard_gets_the_curves_that_the_database_gets(ws):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from looptool.training.grpo import run_grpo

    set_train(ws, report_to="tensorboard")
    run_grpo(ws, load_config(ws), 1, max_steps=2, reward_fn=length_parity_reward)
    logdir = ws / "logs" / "tensorboard" / "round-1-grpo"
    assert any(p.name.startswith("events.out.tfevents.") for p in logdir.iterdir())
    events = EventAccumulator(str(logdir))
    events.Reload()
    assert {"train/loss", "train/reward", "train/reward_std", "train/frac_reward_zero_std"} <= set(events.Tags()["scalars"])
    with Store.open(ws / "looptool.db") as store:
        rows = store.train_steps(1, "grpo")
    for name in ("loss", "reward"):
        curve = [(e.step, e.value) for e in events.Scalars(f"train/{name}")]
        assert curve == [(r["step"], pytest.approx(r[name], rel=1e-6)) for r in rows] and len(curve) == 2
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ  # put back after the stage


def adapter_kind(adapter: Path) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """What an adapter directory holds: its files, and its weights' names and shapes."""
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    return sorted(p.name for p in adapter.iterdir()), {k: tuple(v.shape) for k, v in weights.items()}


def test_cli_trains_with_two_processes_what_it_trains_with_one(ws, tmp_path):
    """The configured (binary) reward: the random tiny model earns the same reward throughout each
    group, so these are steps without signal, which all processes must skip alike."""
    from looptool.training.grpo import run_grpo

    one = tmp_path / "one"
    shutil.copytree(ws, one)
    run_grpo(one, load_config(one), 1, max_steps=3)
    set_train(ws, processes=2)
    result = CliRunner().invoke(app, ["train", "grpo", "-w", str(ws), "--round", "1", "--max-steps", "3"])
    assert result.exit_code == 0, result.output
    for step in (1, 2, 3):
        assert result.output.count(f"grpo step {step}/3:") == 1, result.output  # printed by the first process only
    assert result.output.count("grpo round 1: done after 3 steps") == 1
    assert adapter_kind(ws / "adapters" / "round-1") == adapter_kind(one / "adapters" / "round-1")
    assert not (ws / "adapters" / "round-1-grpo.checkpoints").exists()
    with Store.open(ws / "looptool.db") as store:
        two_rows, info = store.train_steps(1, "grpo"), store.get_round(1)
    with Store.open(one / "looptool.db") as store:
        one_rows = store.train_steps(1, "grpo")
    assert [r["step"] for r in two_rows] == [r["step"] for r in one_rows] == [1, 2, 3]  # no second copy of a row
    assert all(r["frac_reward_zero_std"] == 1 for r in two_rows)  # the steps without signal this test is about
    assert set(two_rows[0]) == set(one_rows[0])
    assert info.adapter_path == "adapters/round-1" and info.metrics.grpo["steps"] == 3
    log = (ws / "logs" / "train-round-1-grpo.log").read_text()
    assert "accelerate" not in result.output and "error" not in result.output.lower()
    assert log.count("grpo step 3/3:") == 1


def test_two_processes_on_the_cpu_average_their_gradients_into_one_policy(ws):
    """With a reward that differs within every group, each step has a gradient: DDP averages the
    two processes' gradients, so both end with the same weights, and those are the saved adapter."""
    set_train(ws, processes=2)
    train = load_config(ws).train
    env = process.stage_env(train)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [*process.launcher(train), "tests.integration.grpo_worker", str(ws)]
    run = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    lines = [line.split(":")[0] for line in run.stdout.splitlines() if line.startswith("grpo step")]
    assert lines == ["grpo step 1/3", "grpo step 2/3", "grpo step 3/3"]
    with Store.open(ws / "looptool.db") as store:
        rows = store.train_steps(1, "grpo")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(r["frac_reward_zero_std"] < 1 for r in rows)  # every step had signal
    first, second = load_file(str(ws / "rank-0.safetensors")), load_file(str(ws / "rank-1.safetensors"))
    assert first.keys() == second.keys() and first
    for name, weight in first.items():
        assert bool((weight == second[name]).all()), f"the processes' {name} differ"
    assert any(bool(v.abs().sum() > 0) for k, v in first.items() if "lora_B" in k)  # B starts at 0: it trained
    saved = load_file(str(ws / "adapters" / "round-1" / "adapter_model.safetensors"))
    assert saved.keys() == first.keys() and all(bool((saved[k] == first[k]).all()) for k in saved)


def test_cli_sft_warm_start_with_two_processes(ws):
    set_train(ws, processes=2, sft_batch_size=4)
    result = CliRunner().invoke(app, ["train", "sft", "-w", str(ws), "--round", "1", "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    assert [result.output.count(f"sft step {step}/2:") for step in (1, 2)] == [1, 1], result.output
    with Store.open(ws / "looptool.db") as store:
        rows, info = store.train_steps(1, "sft"), store.get_round(1)
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)
    assert info.metrics.sft["steps"] == 2
    weights = load_file(str(ws / "adapters" / "round-1-sft" / "adapter_model.safetensors"))
    assert any(bool(v.abs().sum() > 0) for k, v in weights.items() if "lora_B" in k)


def test_a_failure_under_two_processes_ends_with_its_cause_in_one_line(ws, tmp_path):
    """Whichever process fails first (the launcher then stops the other), the user reads the
    stage's own line, not the launcher's report."""
    empty = tmp_path / "empty"
    assert CliRunner().invoke(app, ["init", str(empty)]).exit_code == 0
    save_config(empty, load_config(ws))
    set_train(empty, processes=2)
    result = CliRunner().invoke(app, ["train", "grpo", "-w", str(empty), "--round", "1"])
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1].startswith("error: round 1 has no training samples"), result.output
    assert "elastic" not in result.output and "Traceback" not in result.output
