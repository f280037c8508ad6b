"""Unit tests of how a training stage is started and what it reports to, with no model: the
command line (plain Python, or `accelerate launch` for several processes or DeepSpeed, parsed by
accelerate's own parser), the processes' share of the cores, the trackers' arguments, directories
and missing packages, and that only the first process writes rows and adapters. Real runs with
two processes and with TensorBoard are in tests/integration/test_training_scale.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from looptool.config import TrainConfig, WorkspaceConfig, save_config
from looptool.training import process, tracking
from looptool.training.stage import TrainingError


def launch_args(cmd: list[str]):
    """`cmd` (`python -m accelerate.commands.launch ...`) as accelerate 1.16's launcher reads it."""
    from accelerate.commands.launch import launch_command_parser

    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    return launch_command_parser().parse_args(cmd[3:])


def test_one_process_runs_the_stage_module_itself(tmp_path):
    cmd = process.stage_command(tmp_path, "grpo", 2, TrainConfig(), max_steps=3)
    assert cmd == [sys.executable, "-m", "looptool.training", "grpo", "--workspace", str(tmp_path), "--round", "2",
                   "--max-steps", "3"]


def test_several_processes_run_under_accelerate_launch_with_ddp(tmp_path):
    cmd = process.stage_command(tmp_path, "sft", 1, TrainConfig(processes=2))
    args = launch_args(cmd)
    assert args.num_processes == 2 and args.num_machines == 1 and args.multi_gpu and not args.use_deepspeed
    assert args.main_process_port == 0  # a free port: two jobs on one machine do not meet
    assert args.quiet and args.mixed_precision == "no" and args.dynamo_backend == "no"
    assert args.module and args.training_script == "looptool.training"
    assert args.training_script_args == ["sft", "--workspace", str(tmp_path), "--round", "1"]


def test_a_deepspeed_config_is_passed_to_accelerate(tmp_path, monkeypatch):
    (tmp_path / "ds.json").write_text('{"zero_optimization": {"stage": 2}}')
    monkeypatch.chdir(tmp_path)
    train = TrainConfig(processes=4, deepspeed_config="ds.json")
    args = launch_args(process.stage_command(tmp_path, "grpo", 1, train))
    assert args.use_deepspeed and not args.multi_gpu and args.num_processes == 4
    assert args.deepspeed_config_file == str(tmp_path / "ds.json")  # absolute: the launcher may change directory
    assert launch_args(process.launcher(train.model_copy(update={"processes": 1})) + ["m"]).use_deepspeed


def test_processes_share_the_cores_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert process.stage_env(TrainConfig(processes=2), cores=16)["OMP_NUM_THREADS"] == "8"
    assert process.stage_env(TrainConfig(processes=4), cores=2)["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in process.stage_env(TrainConfig(), cores=16)  # one process: torch's own default
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert process.stage_env(TrainConfig(processes=2), cores=16)["OMP_NUM_THREADS"] == "3"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert process.stage_env(TrainConfig())["HF_HUB_OFFLINE"] == "1"  # never a hub at run time


def test_run_stage_says_in_one_line_that_deepspeed_is_missing(tmp_path, monkeypatch):
    (tmp_path / "ds.json").write_text("{}")
    config = WorkspaceConfig()
    config.train.deepspeed_config = str(tmp_path / "ds.json")
    save_config(tmp_path, config)
    real_find_spec = process.importlib.util.find_spec
    monkeypatch.setattr(process.importlib.util, "find_spec",
                        lambda name, *a: None if name == "deepspeed" else real_find_spec(name, *a))
    monkeypatch.setattr(process.subprocess, "Popen", lambda *a, **k: pytest.fail("nothing may start"))
    with pytest.raises(TrainingError, match=r"^\[train\] deepspeed_config needs the deepspeed package, which is not "
                                            r"installed: pip install deepspeed$"):
        process.run_stage(tmp_path, "grpo", 1, echo=lambda line: None)


def test_the_stage_reads_the_processes_from_the_workspace(tmp_path, monkeypatch):
    config = WorkspaceConfig()
    config.train.processes = 2
    save_config(tmp_path, config)
    started: list[list[str]] = []

    class Done:
        stdout = iter(["grpo step 1/1: loss 0\n"])

        def __init__(self, cmd, **kwargs):
            started.append(cmd)
            self.env = kwargs["env"]

        def wait(self):
            return 0

    monkeypatch.setattr(process.subprocess, "Popen", Done)
    process.run_stage(tmp_path, "grpo", 1, echo=lambda line: None)
    assert launch_args(started[0]).num_processes == 2


def test_a_missing_tracker_package_is_one_line_naming_the_extra(monkeypatch):
    real_find_spec = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec",
                        lambda name, *a: None if name == "trackio" else real_find_spec(name, *a))
    config = WorkspaceConfig()
    tracking.check_trackers(config)  # 'none': nothing is needed
    config.train.report_to = ["tensorboard", "trackio"]
    with pytest.raises(TrainingError, match=r"^\[train\] report_to = 'trackio' needs the trackio package, which is "
                                            r"not installed: pip install 'looptool\[trackio\]'$"):
        tracking.check_trackers(config)


def test_tracking_arguments_name_the_run_and_stay_off_the_hub():
    config = WorkspaceConfig(name="home")
    assert tracking.tracking_args(config, 2, "grpo")["report_to"] == "none"
    config.train.report_to = "trackio"
    args = tracking.tracking_args(config, 2, "grpo")
    assert args == {"report_to": ["trackio"], "run_name": "round-2-grpo", "project": "home",
                    "trackio_space_id": None, "trackio_static_space_id": False}


def test_tracking_env_points_the_trackers_into_the_workspace_and_puts_it_back(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    monkeypatch.setenv("TRACKIO_DIR", "/elsewhere")
    with tracking.tracking_env(tmp_path, 3, "sft"):
        assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "logs" / "tensorboard" / "round-3-sft")
        assert os.environ["TRACKIO_DIR"] == "/elsewhere"  # the user's own store
    assert "TENSORBOARD_LOGGING_DIR" not in os.environ
    monkeypatch.delenv("TRACKIO_DIR")
    with tracking.tracking_env(tmp_path, 3, "sft"):
        assert os.environ["TRACKIO_DIR"] == str(tmp_path / "logs" / "trackio")
    assert "TRACKIO_DIR" not in os.environ


@pytest.mark.slow
def test_only_the_first_process_writes_step_rows(tmp_path, monkeypatch):
    from transformers.trainer_callback import TrainerControl, TrainerState

    from looptool.store import Store
    from looptool.training.callbacks import StepLogger
    from looptool.training.model import Device

    Store.create(tmp_path / "looptool.db").close()
    lines: list[str] = []
    for first in (False, True):
        logger = StepLogger(tmp_path, 1, "grpo", Device(cuda=False, quantized=False), fresh=True, echo=lines.append)
        state = TrainerState(is_world_process_zero=first, is_local_process_zero=first, global_step=1, max_steps=3)
        logger.on_train_begin(None, state, TrainerControl())
        logger.on_log(None, state, TrainerControl(), logs={"loss": 0.5, "reward": 0.25})
        logger.on_train_end(None, state, TrainerControl())
    with Store.open(tmp_path / "looptool.db") as store:
        steps = store.train_steps(1, "grpo")
    assert [(s["step"], s["loss"]) for s in steps] == [(1, 0.5)] and len(lines) == 1


def test_only_the_first_process_saves_and_records_the_adapter(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from looptool.store import Store
    from looptool.training.dataset import Rows
    from looptool.training.model import Device
    from looptool.training.stage import Stage, finish

    Store.create(tmp_path / "looptool.db").close()
    saved: list[str] = []
    model = SimpleNamespace(save_pretrained=lambda path, **kw: (saved.append(path), Path(path).mkdir(parents=True)))
    trainer = SimpleNamespace(model=model, state=SimpleNamespace(global_step=3))
    checkpoints = tmp_path / "adapters" / "round-1-grpo.checkpoints"
    checkpoints.mkdir(parents=True)
    stage = Stage(tmp_path, 1, "grpo", tmp_path, None, Rows(rows=[{}], too_long=0), None,
                  Device(cuda=False, quantized=False), checkpoints, False)
    monkeypatch.setenv("RANK", "1")
    assert finish(stage, trainer).steps == 3
    assert not saved and checkpoints.is_dir()  # the second process leaves both to the first
    with Store.open(tmp_path / "looptool.db") as store:
        assert store.get_round(1) is None
    monkeypatch.setenv("RANK", "0")
    assert finish(stage, trainer).adapter == tmp_path / "adapters" / "round-1"
    assert len(saved) == 1 and not checkpoints.exists()
    with Store.open(tmp_path / "looptool.db") as store:
        assert store.get_round(1).metrics.grpo["steps"] == 3


def test_the_first_process_to_fail_says_why_past_the_launchers_report(tmp_path, monkeypatch):
    save_config(tmp_path, WorkspaceConfig())
    script = tmp_path / "launcher.py"
    script.write_text("import sys\nprint('error in process 1: round 1 has no training samples')\n"
                      "print('error: round 1 has no training samples')\n"
                      "for i in range(30):\n    print(f'torchrun report line {i}')\nsys.exit(1)\n")
    real_popen = process.subprocess.Popen
    monkeypatch.setattr(process.subprocess, "Popen", lambda cmd, **kw: real_popen([sys.executable, str(script)], **kw))
    shown: list[str] = []
    with pytest.raises(TrainingError) as failure:
        process.run_stage(tmp_path, "grpo", 1, echo=shown.append)
    assert str(failure.value) == "round 1 has no training samples"
    assert shown == ["error: round 1 has no training samples"]  # the second process's line stays in the log
