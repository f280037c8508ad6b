"""A real vLLM server (CPU build) with the embedded model, driven through the CLI and the client.

One server is started for the whole module (about a minute on 2 cores) and every check runs
against it: reuse, structured output, prompt log-probs, LoRA hot-loading, and a clean
stop that leaves no process behind.
"""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import psutil
import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import load_config
from looptool.embedded import materialise
from looptool.serving.client import (
    check_endpoint,
    load_lora,
    perplexity,
    prompt_logprobs,
    resolve_endpoint,
    structured_call,
    unload_lora,
)
from looptool.serving.server import ServerManager, port_is_free

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A workspace whose policy server runs; stopped (and checked) at the end of the module."""
    runner = CliRunner()
    ws = tmp_path_factory.mktemp("serving") / "ws"
    assert runner.invoke(app, ["init", str(ws)]).exit_code == 0
    result = runner.invoke(app, ["serve", "start", "-w", str(ws), "--role", "policy"])
    assert result.exit_code == 0, result.output
    config = load_config(ws)
    endpoint = resolve_endpoint(config, "policy", ws, start=False)
    yield ws, endpoint
    ServerManager(ws, config.serving).stop_all()  # in case a test failed before the stop test


def server_processes(ws: Path) -> tuple[int, list[psutil.Process]]:
    config = load_config(ws)
    (info,) = ServerManager(ws, config.serving).known()
    root = psutil.Process(info.pid)
    return info.port, [root, *root.children(recursive=True)]


def test_second_start_reuses_the_live_server(served):
    ws, _ = served
    _, before = server_processes(ws)
    result = CliRunner().invoke(app, ["serve", "start", "-w", str(ws), "--role", "policy"])
    assert result.exit_code == 0, result.output
    assert "reusing the server" in result.output
    _, after = server_processes(ws)
    assert after[0].pid == before[0].pid
    status = CliRunner().invoke(app, ["serve", "status", "-w", str(ws)])
    assert "policy" in status.output and ": running" in status.output


class Booking(BaseModel):
    city: str = Field(max_length=40)
    nights: int = Field(ge=1, le=30)
    breakfast: bool


def test_json_schema_constrained_answer_validates(served):
    _, endpoint = served
    assert endpoint.model in check_endpoint(endpoint)
    answer = structured_call(
        endpoint,
        [("user", "Book a hotel in Lisbon for 3 nights with breakfast. Reply in JSON.")],
        Booking,
        temperature=0,
        max_tokens=80,
    )
    assert isinstance(answer, Booking)
    assert 1 <= answer.nights <= 30


def test_prompt_logprobs(served):
    _, endpoint = served
    natural = prompt_logprobs(endpoint, "The capital of France is Paris.")
    assert natural[0].logprob is None
    assert len(natural) >= 6 and all(t.logprob is not None and t.logprob <= 0 for t in natural[1:])
    scrambled = prompt_logprobs(endpoint, "Paris capital the France of is.")
    assert math.isfinite(perplexity(natural))
    assert perplexity(natural) < perplexity(scrambled)  # the model prefers real English


def test_hot_loaded_lora_adapter_answers(served, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    _, endpoint = served
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(materialise(), dtype=torch.float32)
    # init_lora_weights=False gives non-zero B matrices, so the adapter visibly changes outputs.
    lora = get_peft_model(base, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter_dir = tmp_path / "adapter"
    lora.save_pretrained(adapter_dir)

    load_lora(endpoint, "fresh-adapter", adapter_dir)
    try:
        assert "fresh-adapter" in check_endpoint(endpoint)
        reply = httpx.post(endpoint.base_url + "/chat/completions", timeout=endpoint.timeout_s, json={
            "model": "fresh-adapter", "messages": [{"role": "user", "content": "Say hello."}], "temperature": 0,
            "max_tokens": 16,
        }).json()  # fmt: skip
        assert isinstance(reply["choices"][0]["message"]["content"], str) and reply["model"] == "fresh-adapter"
        text = "Tools are called with JSON arguments."
        base_lp = [t.logprob for t in prompt_logprobs(endpoint, text)[1:]]
        lora_lp = [t.logprob for t in prompt_logprobs(endpoint, text, model="fresh-adapter")[1:]]
        assert len(base_lp) == len(lora_lp)
        assert max(abs(a - b) for a, b in zip(base_lp, lora_lp, strict=True)) > 0.01
    finally:
        unload_lora(endpoint, "fresh-adapter")
    assert "fresh-adapter" not in check_endpoint(endpoint)


def test_stop_leaves_no_process_behind(served):
    ws, _ = served
    port, procs = server_processes(ws)
    assert len(procs) >= 2  # the API server and its engine core
    result = CliRunner().invoke(app, ["serve", "stop", "-w", str(ws)])
    assert result.exit_code == 0 and "stopped smollm2-135m-instruct" in result.output
    alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert port_is_free("127.0.0.1", port)
    assert list(ws.glob("servers/*.json")) == []
