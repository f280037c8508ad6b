"""Synthesis control flow against a scripted server that answers whatever schema it is sent.

The real model is exercised in tests/integration/test_tools.py; here we check resumption,
de-duplication, rejection counting and the order-independence of results.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time

import pytest

from looptool.store import Store
from looptool.tools_sim.synth import synthesise
from tests.fakes import chat_reply


def letters(i: int) -> str:
    return "x" + "".join(chr(97 + int(d)) for d in str(i))  # 12 -> "xbc": fits the name patterns


class SchemaAnswerer:
    """Answers a function-synthesis request with a valid fill of the schema it carries."""

    def __init__(self, function_names=None, jitter: bool = False):
        self.counter = itertools.count()
        self.names = function_names
        self.jitter = jitter
        self.lock = threading.Lock()

    def __call__(self, path, body):
        schema = body["response_format"]["json_schema"]["schema"]
        with self.lock:
            k = next(self.counter)
        if self.jitter:  # later requests may finish first
            time.sleep(random.random() * 0.02)
        answer = {"function_name": self.names(k) if self.names else f"tool_{letters(k)}", "description": "Does a thing."}
        for slot, sub in schema["properties"].items():
            if slot in answer:
                continue
            entry = {"name": f"field_{letters(k)}_{letters(len(answer))}", "description": "A field of it."}
            if "values" in sub["properties"]:
                entry["values"] = [f"value_{letters(v)}" for v in range(sub["properties"]["values"]["minItems"])]
            answer[slot] = entry
        return 200, chat_reply(json.dumps(answer))


@pytest.fixture
def store(tmp_path):
    with Store.create(tmp_path / "looptool.db") as s:
        yield s


def synth_names(store: Store) -> list[str]:
    return sorted(r["name"] for r in store.tool_records() if r["source"] == "synth")


@pytest.mark.slow
def test_reaches_the_target_across_domains_and_resumes_without_duplicates(fake_openai, store):
    fake_openai.responder = SchemaAnswerer()
    report = synthesise(store, fake_openai.endpoint, 30, seed=3, concurrency=4)
    assert report.stored == 30 and report.rejected_total == 0 and not report.exhausted
    records = store.tool_records()
    assert len({r["domain"] for r in records}) == 24  # the plan interleaves domains
    requests_before = len(fake_openai.requests)

    again = synthesise(store, fake_openai.endpoint, 30, seed=3, concurrency=4)
    assert again.stored == 0 and again.attempts == 0 and len(fake_openai.requests) == requests_before

    more = synthesise(store, fake_openai.endpoint, 40, seed=3, concurrency=4)
    assert more.stored == 10 and more.skipped == 30
    assert len(synth_names(store)) == 40 == len(set(synth_names(store)))


def test_duplicate_names_are_rejected_and_counted(fake_openai, store):
    fake_openai.responder = SchemaAnswerer(function_names=lambda k: "same_name")
    report = synthesise(store, fake_openai.endpoint, 5, domains=["weather"], concurrency=2)
    assert report.stored == 1 and report.exhausted
    assert report.rejected["duplicate name"] == report.attempts - 1 == 6  # 7 weather intents


def test_model_output_errors_are_counted_not_raised(fake_openai, store):
    fake_openai.responder = lambda path, body: (200, chat_reply('{"function_name": 42}'))
    report = synthesise(store, fake_openai.endpoint, 3, domains=["weather"], concurrency=3)
    assert report.stored == 0 and report.exhausted and report.rejected_total == 7
    (reason,) = report.rejected
    assert reason.startswith("model output:")


@pytest.mark.slow
def test_result_does_not_depend_on_completion_order(fake_openai, tmp_path):
    """Same seed and same answers per request -> the same tools, however requests interleave."""

    def run(concurrency: int, path) -> list[tuple[str, str]]:
        # Answers keyed by the request's intent, so they do not depend on arrival order.
        def answer(_, body):
            prompt = body["messages"][0]["content"]
            intent = prompt.split('"')[3]
            schema = body["response_format"]["json_schema"]["schema"]
            fill = {"function_name": "tool_" + "_".join(intent.split()[:3]), "description": "Does a thing."}
            for slot, sub in schema["properties"].items():
                if slot not in fill:
                    entry = {"name": "field", "description": "A field of it."}
                    if "values" in sub["properties"]:
                        entry["values"] = ["alpha", "beta", "gamma", "delta", "epsilon"][: sub["properties"]["values"]["minItems"]]
                    fill[slot] = entry
            time.sleep(random.random() * 0.01)
            return 200, chat_reply(json.dumps(fill))

        fake_openai.responder = answer
        with Store.create(path) as s:
            synthesise(s, fake_openai.endpoint, 20, seed=11, concurrency=concurrency)
            return sorted((r["name"], r["tree_path"]) for r in s.tool_records())

    assert run(1, tmp_path / "a.db") == run(8, tmp_path / "b.db")


def test_expansion_adds_model_written_intents_and_drops_copied_examples(fake_openai, store):
    functions = SchemaAnswerer()

    def answer(path, body):
        name = body["response_format"]["json_schema"]["name"]
        if name == "Capabilities":  # as many as the schema asks for, with a copied prompt example
            schema = body["response_format"]["json_schema"]["schema"]
            n_caps = schema["properties"]["capabilities"]["minItems"]
            n_intents = schema["$defs"]["Capability"]["properties"]["intents"]["minItems"]
            texts = ["send a forecast to a friend", "cancel a booked flight"] + [f"share the forecast {letters(k)} now" for k in range(9)]
            caps = [{"capability": "forecast sharing", "intents": texts[:n_intents]} for _ in range(n_caps)]
            return 200, chat_reply(json.dumps({"capabilities": caps}))
        return functions(path, body)

    fake_openai.responder = answer
    from looptool.tools_sim.semantic import expand_subdomain

    intents = expand_subdomain(fake_openai.endpoint, "weather", "forecasts", n_caps=2, n_intents=2)
    # the prompt's example and the repeat are dropped
    assert [i.intent for i in intents] == ["send a forecast to a friend"]
    assert intents[0].path == "weather/forecasts/forecast sharing/send a forecast to a friend"
    report = synthesise(store, fake_openai.endpoint, 100, domains=["weather"], expand=2, concurrency=4)
    # 7 curated intents + the expanded one, which each of the 3 sub-domains returned: the
    # other two are near-identical intents.
    assert report.stored == 8 and report.exhausted and report.rejected == {"near-identical intent": 2}
    assert any(r["tree_path"].endswith("send a forecast to a friend") for r in store.tool_records())
    assert report.expansions_asked == 3
    # A rerun of the finished synthesis asks no sub-domain again: the answers are stored.
    asked = len(fake_openai.requests)
    again = synthesise(store, fake_openai.endpoint, 100, domains=["weather"], expand=2, concurrency=4)
    capability_requests = [b for _, b in fake_openai.requests[asked:]
                           if b["response_format"]["json_schema"]["name"] == "Capabilities"]
    assert again.expansions_asked == 0 and capability_requests == [] and again.skipped == 8
