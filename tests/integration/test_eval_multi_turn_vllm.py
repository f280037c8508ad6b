"""BFCL-v3 multi-turn entries asked end to end through the CLI, against the embedded model on a real
vLLM CPU server.

The server gets a workspace of its own (started and stopped with this module, so it never runs
beside test_eval_vllm's): the multi-turn prompts are 2-4.5k tokens (the services' function docs),
beyond the default 2048-token context, so this policy is served with the model's full 8192."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import load_config, save_config
from looptool.serving.client import resolve_endpoint
from looptool.serving.server import ServerManager
from looptool.store import Store

pytestmark = pytest.mark.slow

CATEGORIES = ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"]
COMMAND = ["eval", "bfcl", "--categories", ",".join(CATEGORIES), "--limit", "1"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp("multi_turn") / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    toml = (ws / "looptool.toml").read_text()
    # Every step is a request: short answers keep the conversations quick.
    (ws / "looptool.toml").write_text(toml.replace("max_tokens = 256", "max_tokens = 32", 1))
    config = load_config(ws)
    for role in ("policy", "generator", "judge"):  # roles sharing a model share one server
        getattr(config, role).max_model_len = 8192
    save_config(ws, config)
    config = load_config(ws)
    resolve_endpoint(config, "policy", ws, log=lambda *_: None)
    yield ws
    ServerManager(ws, config.serving).stop_all()


def test_multi_turn_entries_are_asked_stored_and_not_asked_again(ws):
    result = CliRunner().invoke(app, [*COMMAND, "-w", str(ws)])
    assert result.exit_code == 0, result.output
    for category in CATEGORIES:
        assert f"\n{category} (" in result.output
    with Store.open(ws / "looptool.db") as store:
        (run,) = store.eval_runs("bfcl")
        rows = {r["entry_id"]: r for r in store.eval_results(run["id"])}
        scores = store.eval_scores(run["id"])
        first_event = store.events()[-1]["message"]
    assert set(rows) == {f"{c}_0" for c in CATEGORIES}
    assert {c: s["total"] for c, s in scores.items()} == dict.fromkeys(CATEGORIES, 1)
    assert ": 4 scored this run" in first_event
    for entry_id, row in rows.items():
        assert row["passed"] or row["error_type"], entry_id
        if row["error_type"] == "inference_error:request_rejected":
            # Only a long-context conversation may outgrow even 8192 tokens (its results are long).
            assert entry_id == "multi_turn_long_context_0" and "8192" in row["error"]
            continue
        turns = json.loads(row["output"])  # per turn, the text of each step, as the outputs file has it
        assert turns and all(isinstance(step, str) for turn in turns for step in turn)
        assert row["prompt_tokens"] > 2000 and row["completion_tokens"] > 0
    # The same command again asks nothing and prints the same table.
    again = CliRunner().invoke(app, [*COMMAND, "-w", str(ws)])
    assert again.exit_code == 0, again.output
    with Store.open(ws / "looptool.db") as store:
        assert ": 0 scored this run" in store.events()[-1]["message"]
        assert len(store.eval_results(run["id"])) == 4
    assert again.output.splitlines()[-12:] == result.output.splitlines()[-12:]
