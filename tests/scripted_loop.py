"""A scripted loop for tests: templated samples, a deterministic fake-server responder for the
policy, judge and expander, a workspace wired to the fake server, and the bookkeeping that two
runs of the loop must agree on; and a process that holds a workspace's loop lock, as a loop
running elsewhere does."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from looptool.config import DB_FILE, EndpointModel, load_config, save_config
from looptool.policy.prompt import label_text
from looptool.seed.templated import templated_samples
from looptool.store import Store
from tests.fakes import chat_reply, json_schema_responder, schema_name

# Half the samples say their label is model-written, not exact, so that the judge has labels to rule
# on (templated labels are exact by construction, and a failed probe on one is the policy's error
# by rule).
SAMPLES = [s if i % 2 else s.model_copy(update={"exact": False})
           for i, s in enumerate(templated_samples(24, seed=5, heldout_fraction=0.25))]
BY_USER = {s.messages[-1].content: s for s in SAMPLES}


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def responder(tokenizer, fail: dict | None = None):
    """Probe decodes are right for about half the samples; the judge blames the prediction unless
    the user text hashes odd (then the label); expansions are schema instances the judge accepts."""
    # Answers depend on the request alone, so a run resumed with a fresh responder gets what an
    # uninterrupted one got.
    expander = json_schema_responder()

    def respond(path: str, body: dict):
        if fail is not None:
            fail["n"] = fail.get("n", 0) + 1
            if fail["n"] == fail["at"]:
                return 503, {"error": {"message": "server gone"}}
        if path.endswith("_lora_adapter"):
            return 200, {}
        if path.endswith("/completions") and "prompt" in body:
            user = next((u for u in BY_USER if u in body["prompt"]), None)
            sample = BY_USER.get(user)
            text = label_text(sample.label) if sample and _h(user) % 2 else "Sorry, I cannot."
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            if body.get("logprobs") is not None:  # the answer's own log-probs: output perplexity
                lp = -0.1 * (1 + _h(user or "") % 5)
                choice["logprobs"] = {"tokens": ["t"] * 3, "token_logprobs": [lp] * 3, "text_offset": [0, 1, 2],
                                      "top_logprobs": None}
            if body.get("prompt_logprobs") is not None:
                n = len(tokenizer(body["prompt"], add_special_tokens=False)["input_ids"])
                lp = -0.1 * (1 + _h(user or "") % 5)
                choice["prompt_logprobs"] = [None] + [{"1": {"logprob": lp, "decoded_token": "t"}}] * (n - 1)
            return 200, {"id": "c", "object": "text_completion", "created": 0, "model": "m", "choices": [choice]}
        if "response_format" not in body:
            return 200, chat_reply("Sorry, I cannot.")  # evaluation answers
        name = schema_name(body)
        if name == "expander":
            return expander(path, body)
        props = body["response_format"]["json_schema"]["schema"]["properties"]
        if "correct" in props:
            return 200, chat_reply(json.dumps({"analysis": "fine", "correct": True}))
        prompt = body["messages"][-1]["content"]
        user = prompt.split("User: ", 1)[1].split("\n", 1)[0] if "User: " in prompt else ""
        first = prompt.split("Answer 1:\n", 1)[1].split("\n\nAnswer 2:", 1)[0]
        sample = next((s for u, s in BY_USER.items() if u == user), None)
        first_is_label = sample is not None and first == _answer(sample)
        blame_label = _h(user) % 3 == 0
        verdict = "ANSWER_1_WRONG" if (first_is_label == blame_label) else "ANSWER_2_WRONG"
        return 200, chat_reply(json.dumps({"analysis": "checked", "verdict": verdict}))

    return respond


def _answer(sample) -> str:
    from looptool.agents.judge import answer_text

    return answer_text(sample.label.calls, sample.label.text)


def scripted_workspace(workspace: Path, fake_openai, *, review: bool = False, bfcl: str = "",
                       acebench: str = "") -> Path:
    config = load_config(workspace).model_copy(deep=True)
    fake = EndpointModel(kind="endpoint", base_url=fake_openai.endpoint.base_url, model="m")
    config.policy = config.generator = config.judge = fake
    config.train.model = "smollm2-135m-instruct"
    config.serving.max_retries = 0
    config.loop.eval_bfcl_categories = bfcl  # BFCL in one test only: the rest is the same path
    config.loop.eval_bfcl_limit = 2
    config.loop.eval_acebench_categories = acebench  # likewise ACEBench
    config.loop.eval_acebench_limit = 2
    config.loop.expansions_per_error = 2
    config.loop.expander = "model"  # the model expander and its judge check: the templated one has its own tests
    config.loop.review = review
    save_config(workspace, config)
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples(SAMPLES)
    return workspace


def bookkeeping(ws: Path) -> dict:
    with Store.open(ws / DB_FILE) as store:
        samples = list(store.iter_samples())
        rounds = store.rounds()
        return {
            "by_origin": Counter(s.origin for s in samples),
            "ids_unique": len({s.id for s in samples}) == len(samples),
            "probes": {r.n: Counter(p.category for p in store.probes(r.n)) for r in rounds},
            "verdicts": {r.n: Counter(v.verdict for v in store.verdicts(r.n)) for r in rounds},
            "expansions": {r.n: store.expansion_counts(r.n) for r in rounds},
            "data": {r.n: sorted(r.data_ids) for r in rounds},
            "status": {r.n: r.status for r in rounds},
            "labels": sorted((s.id, s.label_version) for s in samples),
        }


@contextmanager
def loop_running_elsewhere(workspace: Path) -> Iterator[subprocess.Popen]:
    """A process that holds the workspace's loop lock, as a loop started in another terminal does;
    SIGKILLed at the end (the lock goes with it)."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from looptool.loop.control import _only_loop\n"
                               "with _only_loop(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)",
                               str(workspace)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait(10)
