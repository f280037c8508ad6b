"""`[train] cpu_precision`: which CPUs train under bf16 autocast."""

from __future__ import annotations

import pytest

from looptool.config import TrainConfig
from looptool.training import model


@pytest.mark.parametrize(("setting", "native", "expected"), [
    ("auto", True, True), ("auto", False, False), ("bfloat16", False, True), ("float32", True, False)])
def test_cpu_precision_picks_bf16_autocast(monkeypatch, setting, native, expected):
    import torch

    from looptool.serving import server

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(server, "cpu_has_fast_bf16", lambda cpuinfo=None: native)
    device = model.device_for(TrainConfig(cpu_precision=setting))
    assert device.cpu_bf16 is expected and not device.cuda
    assert ("bf16 autocast" in device.description) is expected


def test_cpu_precision_is_validated():
    with pytest.raises(ValueError, match="cpu_precision"):
        TrainConfig(cpu_precision="fp16")
