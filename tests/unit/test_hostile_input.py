"""Hostile-but-realistic input (issue "Hostile input and broken servers"): each defect found by
hand has a test here that failed before its fix. Failure cases end in one line naming the cause,
a non-zero exit, and the database unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import socket
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from looptool.cli import app
from tests.fakes import chat_reply
from looptool.schema import ToolCall, ToolSpec
from looptool.serving.client import ModelOutputError, parse_json_answer
from looptool.store import Store
from looptool.tools_sim.importers import ToolImportError, parse_tools
from looptool.tools_sim.validate import argument_errors


def db_bytes(ws: Path) -> bytes:
    return (ws / "looptool.db").read_bytes()


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.output


# ---------------------------------------------------------------------------------------------
# 1. `$ref` is never fetched: no connection, no file read


class Tripwire:
    """A listening socket that records every connection, a secret file, and an audit hook that
    records any open of that file or any connection attempt made while armed."""

    _armed: list[Tripwire] = []
    _hooked = False

    def __init__(self, tmp_path: Path) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/x.json"
        self.secret = tmp_path / "secret.json"
        self.secret.write_text('{"type": "string", "description": "TOP-SECRET"}')
        self.file_url = self.secret.as_uri()
        self.connections: list[object] = []
        self.opened: list[str] = []
        self.connects: list[object] = []
        self.listener.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        if not Tripwire._hooked:  # audit hooks cannot be removed: one for the process, gated by _armed
            sys.addaudithook(Tripwire._audit)
            Tripwire._hooked = True
        Tripwire._armed.append(self)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.listener.accept()
            except OSError:
                continue
            self.connections.append(addr)
            conn.close()

    @staticmethod
    def _audit(event: str, args: tuple) -> None:
        for wire in Tripwire._armed:
            if event == "open" and args and str(args[0]) == str(wire.secret):
                wire.opened.append(str(args[0]))
            elif event == "socket.connect":
                wire.connects.append(args[1])

    def close(self) -> None:
        Tripwire._armed.remove(self)
        self._stop.set()
        self._thread.join()
        self.listener.close()

    def untouched(self) -> bool:
        return not self.connections and not self.opened and not self.connects


@pytest.fixture
def tripwire(tmp_path):
    wire = Tripwire(tmp_path)
    yield wire
    wire.close()


def ref_tool(ref: str, name: str = "leaky") -> dict:
    return {"name": name, "description": "d", "parameters": {
        "type": "object", "properties": {"city": {"$ref": ref}}, "required": ["city"]}}  # fmt: skip


def test_tripwire_sees_a_fetch(tripwire):
    """The tripwire itself works: jsonschema's default resolution is caught connecting and reading."""
    import jsonschema
    import warnings

    with warnings.catch_warnings(), pytest.raises(Exception):
        warnings.simplefilter("ignore")
        jsonschema.validate("x", {"$ref": tripwire.url})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jsonschema.validate("x", {"$ref": tripwire.file_url})
    assert tripwire.connects and tripwire.opened


@pytest.mark.parametrize("kind", ["url", "file_url"])
def test_import_refuses_a_non_local_ref_without_fetching(kind, tripwire, workspace, runner, tmp_path):
    ref = getattr(tripwire, kind)
    with pytest.raises(ToolImportError) as info:
        parse_tools([ref_tool(ref)], "tools.json")
    message = str(info.value)
    assert "\n" not in message and "'leaky'" in message and "parameters.properties.city.$ref" in message
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"tools": [{"name": "leaky", "inputSchema": ref_tool(ref)["parameters"]}]}))
    before = db_bytes(workspace)
    result = runner.invoke(app, ["tools", "import", str(path), "-w", str(workspace)])
    one_line_error(result, "parameters.properties.city.$ref: only references inside the schema")
    assert db_bytes(workspace) == before
    assert "TOP-SECRET" not in result.output and tripwire.untouched()


def test_local_refs_still_work(tripwire):
    params = {"type": "object", "$defs": {"city": {"type": "string"}},
              "properties": {"city": {"$ref": "#/$defs/city"}}, "required": ["city"]}  # fmt: skip
    spec = parse_tools([{"name": "local", "description": "d", "parameters": params}]).specs[0]
    assert argument_errors(spec, ToolCall(name="local", arguments={"city": "Paris"})) == []
    assert argument_errors(spec, ToolCall(name="local", arguments={"city": 3}))[0].kind == "wrong_type"
    assert tripwire.untouched()


@pytest.mark.parametrize("kind", ["url", "file_url", "relative"])
def test_validation_never_fetches_even_a_stored_remote_ref(kind, tripwire):
    """A spec that bypassed the import check (an older workspace's row) still cannot fetch."""
    ref = {"url": tripwire.url, "file_url": tripwire.file_url, "relative": "other.json"}[kind]
    spec = ToolSpec.model_construct(name="leaky", description="d", parameters=ref_tool(ref)["parameters"], returns=None)
    errors = argument_errors(spec, ToolCall(name="leaky", arguments={"city": "Paris"}))
    assert [e.kind for e in errors] == ["invalid"] and "does not resolve" in errors[0].message
    with pytest.raises(ModelOutputError, match="does not resolve"):
        parse_json_answer('"Paris"', {"$ref": ref}, "answer")
    # A dangling local reference fails the same way, as an error and not a traceback.
    with pytest.raises(ModelOutputError, match="does not resolve"):
        parse_json_answer('"Paris"', {"$ref": "#/$defs/missing"}, "answer")
    assert tripwire.untouched()


def test_a_default_under_a_remote_ref_is_not_fetched(tripwire):
    from looptool.tools_sim.validate import spec_problems

    params = {"type": "object", "properties": {"city": {"$ref": tripwire.url, "default": "x", "description": "c"}}}
    spec = ToolSpec.model_construct(name="leaky", description="d", parameters=params, returns=None)
    spec_problems(spec)
    assert tripwire.untouched()


# ---------------------------------------------------------------------------------------------
# 2. NaN / Infinity in a schema: refused at import; a row that no longer validates is skipped


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_at_import(constant, workspace, runner, tmp_path):
    path = tmp_path / "tools.json"
    path.write_text('[{"name": "f", "description": "d", "parameters": {"type": "object", "properties": '
                    '{"x": {"type": "number", "maximum": %s}}}}]' % constant)
    before = db_bytes(workspace)
    result = runner.invoke(app, ["tools", "import", str(path), "-w", str(workspace)])
    one_line_error(result, "parameters.properties.x.maximum: ")
    assert "is not a finite number" in result.output and "'f'" in result.output
    assert db_bytes(workspace) == before


def test_a_row_that_no_longer_validates_is_skipped_and_named(workspace, runner, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"name": "fine", "description": "d", "parameters": {"type": "object", "properties": {}}}]))
    assert runner.invoke(app, ["tools", "import", str(good), "-w", str(workspace)]).exit_code == 0
    # What an older LoopTool stored for {"maximum": NaN}: null, which is not a valid schema.
    bad = {"name": "poisoned", "description": "d", "parameters": {
        "type": "object", "properties": {"x": {"type": "number", "maximum": None}}}, "returns": None}  # fmt: skip
    with Store.open(workspace / "looptool.db") as store, store.transaction():
        store.db.execute("INSERT INTO tools (id, name, domain, spec_json, source, tree_path, created_at) "
                         "VALUES ('t_bad', 'poisoned', 'x', ?, 'import', '', '2026')", [json.dumps(bad)])
    for command in (["tools", "list"], ["tools", "stats"], ["tools", "show", "fine"], ["tools", "import", str(good)]):
        result = runner.invoke(app, [*command, "-w", str(workspace)])
        assert result.exit_code == 0, result.output
        assert "fine" in result.output or "already present" in result.output or "tools: 1" in result.output
        warning = [line for line in result.stderr.splitlines() if "poisoned" in line]
        assert len(warning) == 1 and "t_bad" in warning[0] and "DELETE FROM tools WHERE id = 't_bad'" in warning[0]
    with Store.open(workspace / "looptool.db") as store:
        warnings: list[str] = []
        store.warn = warnings.append
        assert [r["name"] for r in store.tool_records()] == ["fine"] and len(warnings) == 1
        from looptool.store import StoreError

        with pytest.raises(StoreError, match="'poisoned' .*no longer validates"):
            store.get_tool("t_bad")


# ---------------------------------------------------------------------------------------------
# 6. A name is one tool: a second, different spec under a stored name is refused


def test_a_second_spec_under_the_same_name_is_refused(workspace, runner, tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps([{"name": "dup", "description": "one", "parameters": {"type": "object", "properties": {}}}]))
    second.write_text(json.dumps([{"name": "other", "description": "x"}, {"name": "dup", "description": "two"}]))
    assert runner.invoke(app, ["tools", "import", str(first), "-w", str(workspace)]).exit_code == 0
    assert runner.invoke(app, ["tools", "import", str(first), "-w", str(workspace)]).exit_code == 0  # the same spec again
    before = db_bytes(workspace)
    one_line_error(runner.invoke(app, ["tools", "import", str(second), "-w", str(workspace)]),
                   "tool 'dup' is already in the workspace with a different spec")
    assert db_bytes(workspace) == before  # not even 'other', which came first in the file
    both = tmp_path / "both.json"  # two specs of one name in one file: the same refusal
    both.write_text(json.dumps([{"name": "twice", "description": "1"}, {"name": "twice", "description": "2"}]))
    one_line_error(runner.invoke(app, ["tools", "import", str(both), "-w", str(workspace)]), "'twice'")
    assert db_bytes(workspace) == before


def test_on_duplicate_skip_and_replace(workspace, runner, tmp_path):
    from looptool.schema import Label, Message, Sample

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps([{"name": "dup", "description": "one"}, {"name": "used", "description": "one"}]))
    second.write_text(json.dumps([{"name": "dup", "description": "two"}, {"name": "new", "description": "x"}]))
    ws = ["-w", str(workspace)]
    assert runner.invoke(app, ["tools", "import", str(first), *ws]).exit_code == 0
    refused = runner.invoke(app, ["tools", "import", str(second), *ws])
    one_line_error(refused, "--on-duplicate skip")

    skipped = runner.invoke(app, ["tools", "import", str(second), *ws, "--on-duplicate", "skip"])
    assert skipped.exit_code == 0 and "skipped 1 whose name was already taken" in skipped.output, skipped.output
    with Store.open(workspace / "looptool.db") as store:
        specs = {r["name"]: r["spec"].description for r in store.tool_records()}
    assert specs == {"dup": "one", "used": "one", "new": "x"}

    replaced = runner.invoke(app, ["tools", "import", str(second), *ws, "--on-duplicate", "replace"])
    assert replaced.exit_code == 0 and "replaced 1 stored specs" in replaced.output, replaced.output
    with Store.open(workspace / "looptool.db") as store:
        assert {r["name"]: r["spec"].description for r in store.tool_records()}["dup"] == "two"
        used = next(r["spec"] for r in store.tool_records() if r["name"] == "used")
        store.upsert_sample(Sample(messages=[Message(role="user", content="hi")], tools=[used], label=Label(text="hello")))
    # A spec that data was made with is not replaced: the samples would describe another tool.
    third = tmp_path / "c.json"
    third.write_text(json.dumps([{"name": "used", "description": "two"}]))
    before = db_bytes(workspace)
    one_line_error(runner.invoke(app, ["tools", "import", str(third), *ws, "--on-duplicate", "replace"]),
                   "tool 'used' cannot be replaced: 0 dialogues and 1 samples")
    assert db_bytes(workspace) == before
    one_line_error(runner.invoke(app, ["tools", "import", str(third), *ws, "--on-duplicate", "maybe"]), "--on-duplicate")


# ---------------------------------------------------------------------------------------------
# 7. Retries and timeouts are bounded in the config; a retried request says so


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("max_retries = 99999999999999999999", "serving.max_retries: Input should be less than or equal to 20"),
        ("request_timeout_s = inf", "serving.request_timeout_s: Input should be less than or equal to 3600"),
        ("request_timeout_s = nan", "serving.request_timeout_s: Input should be less than or equal to 3600"),
        ("startup_timeout_s = inf", "serving.startup_timeout_s: Input should be less than or equal to 7200"),
    ],
)
def test_unbounded_retries_and_timeouts_are_refused(setting, fragment, workspace, runner):
    (workspace / "looptool.toml").write_text(f"[serving]\n{setting}\n")
    before = db_bytes(workspace)
    one_line_error(runner.invoke(app, ["eval", "show", "-w", str(workspace)]), fragment)
    assert db_bytes(workspace) == before


def test_a_retried_request_prints_a_line(fake_openai, monkeypatch, capsys):
    import asyncio

    from looptool.serving.client import acomplete, prompt_logprobs, structured_json
    from tests.fakes import chat_reply

    monkeypatch.setattr("looptool.serving.client.RETRY_BASE_DELAY_S", 0.01)
    fake_openai.replies += [(503, {"error": "busy"}), (200, chat_reply("hi"))]
    assert asyncio.run(acomplete(fake_openai.endpoint, [{"role": "user", "content": "x"}])).content == "hi"
    fake_openai.replies += [(502, {"error": "busy"}), (200, chat_reply('"ok"'))]
    assert structured_json(fake_openai.endpoint, [("user", "x")], {"type": "string"}) == "ok"
    fake_openai.replies += [(503, {"error": "busy"}), (200, {"choices": [{"prompt_logprobs": [None]}]})]
    prompt_logprobs(fake_openai.endpoint, "a")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert len(lines) == 3, lines
    url = fake_openai.endpoint.base_url
    assert lines[0] == f'note: chat request to {url} failed: HTTP 503: {{"error": "busy"}}; retry 1 of 3'
    assert lines[1] == f'note: structured call to {url} failed: HTTP 502: {{"error": "busy"}}; retry 1 of 3'
    assert lines[2] == f'note: prompt log-probs request to {url} failed: HTTP 503: {{"error": "busy"}}; retry 1 of 3'


# ---------------------------------------------------------------------------------------------
# 10. Secrets are not shown: an Endpoint's API key, a password in a base_url


def test_endpoint_repr_hides_the_key_and_the_password():
    from looptool.serving.client import Endpoint

    endpoint = Endpoint("http://alice:hunter2@gpu-box:8000/v1", "m", api_key="sk-SECRET")
    for text in (repr(endpoint), str(endpoint), f"{endpoint}", endpoint.display_url):
        assert "sk-SECRET" not in text and "hunter2" not in text
    assert endpoint.display_url == "http://alice:***@gpu-box:8000/v1"


def test_a_password_in_base_url_is_never_printed(workspace, runner, fake_openai, capsys):
    port = fake_openai.server.server_port
    (workspace / "looptool.toml").write_text(
        f"[judge]\nkind = 'endpoint'\nbase_url = 'http://alice:hunter2@127.0.0.1:{port}/v1'\nmodel = 'm'\n"
        "[serving]\nmax_retries = 0\n"
    )
    status = runner.invoke(app, ["serve", "status", "-w", str(workspace)])
    assert "alice:***@127.0.0.1" in status.output and "hunter2" not in status.output
    # An error naming the endpoint, and a retry line, redact it too.
    from looptool.config import load_config
    from looptool.serving.client import check_endpoint, resolve_endpoint
    from looptool.serving.server import ServingError

    endpoint = resolve_endpoint(load_config(workspace), "judge", workspace)
    fake_openai.server.shutdown()
    fake_openai.server.server_close()
    with pytest.raises(ServingError) as info:
        check_endpoint(endpoint, timeout_s=1)
    assert "alice:***@" in str(info.value) and "hunter2" not in str(info.value)
    bad = (workspace / "looptool.toml")
    bad.write_text("[judge]\nkind = 'endpoint'\nbase_url = 'ftp://alice:hunter2@h/v1'\nmodel = 'm'\n")
    result = runner.invoke(app, ["serve", "status", "-w", str(workspace)])
    assert result.exit_code == 1 and "hunter2" not in result.output


# ---------------------------------------------------------------------------------------------
# 5. The BFCL JavaScript literal converter is linear: a 200 KB answer converts in well under a second

# The official converter's patterns, which ours must match (they backtrack exponentially).
JS_2D = r"\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)"
JS_PAIR = r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)"


@pytest.mark.parametrize(
    ("literal", "type_name"),
    [
        ("[" + "[1], " * 40_000, "array"),  # exponential in the 2-D pattern before
        ("[[]" + ",[]" * 66_000, "array"),
        ("new Array([" + "[1]," * 50_000, "array"),
        ("{" + "a" * 200_000 + "}", "dict"),
        ("{" + "a: 1, " * 33_000 + "}", "dict"),
        ("{" + "a, " * 66_000 + "b: 1}", "dict"),
        ("{k: [" + "[" * 200_000 + "]}", "dict"),
    ],
)
def test_js_conversion_is_linear(literal, type_name):
    import time

    from looptool.eval.bfcl_literals import js_to_python

    started = time.process_time()
    js_to_python(literal, type_name, "array" if type_name == "array" else None)
    assert time.process_time() - started < 2.0


def test_js_scanners_match_the_official_patterns():
    import random
    import re

    from looptool.eval.bfcl_literals import _js_2d_end, _js_pairs, _js_rows

    rng = random.Random(0)
    for _ in range(20_000):
        text = rng.choice(["", "[", "[[", "new Array(", "new  Array( [", "[ ["]) + "".join(
            rng.choice("[[]],, \n:a1'{") for _ in range(rng.randint(0, 14)))
        match = re.match(JS_2D, text)
        assert _js_2d_end(text) == (match.end() if match else None), text
        if match:
            assert _js_rows(text, match.end()) == re.findall(r"\[(.*?)\]", match.group(0)), text
        body = text.replace("\n", " ")
        assert _js_pairs(body) == re.findall(JS_PAIR, body), body


# ---------------------------------------------------------------------------------------------
# 4. Depth and size bombs: one line with file:line, never a RecursionError / ValueError traceback

BOMBS = {
    "100k-deep JSON": "[\n" + "[" * 100_000 + "]" * 100_000 + "\n]",
    "a 400-deep schema": json.dumps([{"name": "f", "parameters": {"type": "object", "properties": {
        "x": json.loads('{"items": ' * 400 + "{}" + "}" * 400)}}}]),  # fmt: skip
    "a 5,000-digit integer": '[{"name": "f", "parameters": {"type": "object", "properties": {\n"x": {"maximum": '
                             + "9" * 5000 + "}}}}]",
    "an escaped lone surrogate": '[{"name": "f",\n "description": "\\ud800", "parameters": {"type": "object"}}]',
}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_bombs_in_a_tools_file_are_one_line(kind, workspace, runner, tmp_path):
    path = tmp_path / "tools.json"
    path.write_text(BOMBS[kind])
    before = db_bytes(workspace)
    result = runner.invoke(app, ["tools", "import", str(path), "-w", str(workspace)])
    expected = {"100k-deep JSON": "line 2: nested deeper than 64 levels", "a 400-deep schema": "nested deeper than 64",
                "a 5,000-digit integer": "line 2: an integer too long", "an escaped lone surrogate": "line 2: a string "
                "holds a lone surrogate"}[kind]  # fmt: skip
    one_line_error(result, f"{path}: ")
    assert expected in result.output
    assert db_bytes(workspace) == before


def test_a_deep_schema_from_anywhere_is_refused_by_toolspec():
    from pydantic import ValidationError

    deep = json.loads('{"items": ' * 400 + "{}" + "}" * 400)
    with pytest.raises(ValidationError, match="nested deeper than 64 levels"):
        ToolSpec(name="f", parameters={"type": "object", "properties": {"x": deep}})


@pytest.mark.parametrize("kind", ["deep", "digits", "surrogate"])
def test_bombs_in_an_outputs_file_are_one_line(kind, runner, tmp_path):
    line = {"deep": '{"id": "simple_0", "output": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "digits": '{"id": "simple_0", "output": "x", "n": ' + "1" * 5000 + "}",
            "surrogate": '{"id": "simple_0", "output": "\\udc00"}'}[kind]  # fmt: skip
    path = tmp_path / "outputs.jsonl"
    path.write_text('{"id": "simple_1", "output": "[]"}\n' + line + "\n")
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", str(path)])
    one_line_error(result, f"{path}:2: ")


def test_a_bomb_in_a_model_answer_is_a_model_output_error():
    with pytest.raises(ModelOutputError, match="nested deeper"):
        parse_json_answer("[" * 100_000 + "]" * 100_000, {"type": "array"})
    with pytest.raises(ModelOutputError, match="integer too long"):
        parse_json_answer("9" * 5000, {"type": "integer"})


# ---------------------------------------------------------------------------------------------
# 8. Filesystem errors: one line, checked before work starts where possible


def test_init_on_a_file_or_under_a_read_only_parent(runner, tmp_path, monkeypatch):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    one_line_error(runner.invoke(app, ["init", str(a_file)]), "it is a file, not a directory")
    one_line_error(runner.invoke(app, ["init", str(a_file / "ws")]), "is a file, not a directory")
    assert a_file.read_text() == "x"
    # Tests run as root, for whom chmod does not make a directory read-only; the check asks
    # os.access, which does answer no on a read-only mount, so the test makes os.access say no.
    # This proves the check and its message, not the kernel's answer.
    parent = tmp_path / "ro"
    parent.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == parent else real_access(p, mode, **kw))
    one_line_error(runner.invoke(app, ["init", str(parent / "ws")]), f"{parent} is read-only")
    assert list(parent.iterdir()) == []  # nothing half-made


def test_init_when_the_directory_cannot_be_made_is_one_line(runner, tmp_path, monkeypatch):
    # An OSError the pre-checks did not foresee (here: mkdir refused) still ends in one line.
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    one_line_error(runner.invoke(app, ["init", str(tmp_path / "ws")]), "Permission denied")


def test_write_commands_on_a_read_only_workspace(workspace, runner, tmp_path, monkeypatch):
    tools = tmp_path / "t.json"
    tools.write_text(json.dumps([{"name": "fine", "description": "ok"}]))
    before = db_bytes(workspace)
    db = workspace / "looptool.db"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == db else real_access(p, mode, **kw))
    one_line_error(runner.invoke(app, ["tools", "import", str(tools), "-w", str(workspace)]), f"{db} is read-only")
    one_line_error(runner.invoke(app, ["seed", "--templated", "--n", "5", "-w", str(workspace)]), "is read-only")
    assert runner.invoke(app, ["tools", "list", "-w", str(workspace)]).exit_code == 0  # reading still works
    assert db_bytes(workspace) == before


def test_a_database_opened_read_only_fails_at_its_first_write_in_one_line(workspace, runner, tmp_path, monkeypatch):
    # The pre-check can be wrong (a file that turns read-only under a running command, a mount
    # os.access misjudges): SQLite then refuses the first write, and the CLI says so in one line.
    # Here SQLite really opens the file read-only (mode=ro), which binds root as well.
    import looptool.store.base as store_module

    real_connect = sqlite3.connect
    monkeypatch.setattr(store_module.sqlite3, "connect", lambda path, **kw: real_connect(
        Path(path).as_uri() + "?mode=ro", uri=True, **kw))
    tools = tmp_path / "t.json"
    tools.write_text(json.dumps([{"name": "fine", "description": "ok"}]))
    before = db_bytes(workspace)
    one_line_error(runner.invoke(app, ["tools", "import", str(tools), "-w", str(workspace)]),
                   "looptool.db is read-only (attempt to write a readonly database)")
    monkeypatch.undo()
    assert db_bytes(workspace) == before


def test_verdicts_into_a_missing_directory_is_refused_before_the_run_is_stored(workspace, runner, tmp_path):
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"id": "simple_0", "output": "[]"}) + "\n")
    before = db_bytes(workspace)
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", str(outputs), "--verdicts",
                                 str(tmp_path / "no" / "such" / "v.jsonl"), "-w", str(workspace)])
    one_line_error(result, "does not exist")
    assert db_bytes(workspace) == before  # no run stored


# ---------------------------------------------------------------------------------------------
# 9. Damaged databases: one line saying so and what gives the rows back


def _damage_middle_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = 4096
    rng = random.Random(9)
    for n in range(2, len(data) // page - 1):  # every page but the header page and the last
        start = n * page + 100
        data[start : start + 2000] = rng.randbytes(2000)
    db.write_bytes(bytes(data))


@pytest.fixture
def full_workspace(workspace, runner, tmp_path):
    """A workspace with tools and samples in it, checkpointed into the main database file."""
    tools = tmp_path / "t.json"
    tools.write_text(json.dumps([{"name": f"tool_{i}", "description": "d" * 300} for i in range(60)]))
    assert runner.invoke(app, ["tools", "import", str(tools), "-w", str(workspace)]).exit_code == 0
    assert runner.invoke(app, ["seed", "--templated", "--n", "60", "-w", str(workspace)]).exit_code == 0
    with sqlite3.connect(workspace / "looptool.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return workspace


DAMAGE_COMMANDS = [["tools", "list"], ["tools", "stats"], ["dialogues", "list"], ["eval", "show"],
                   ["seed", "--templated", "--n", "70"]]


def test_random_bytes_in_the_middle_pages(full_workspace, runner):
    db = full_workspace / "looptool.db"
    _damage_middle_pages(db)
    before = db.read_bytes()
    for command in DAMAGE_COMMANDS:
        result = runner.invoke(app, [*command, "-w", str(full_workspace)])
        one_line_error(result, "looptool.db is damaged (")
        assert ".recover" in result.output
    assert db.read_bytes() == before


def test_a_non_numeric_schema_version(full_workspace, runner):
    db = full_workspace / "looptool.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = 'six' WHERE key = 'schema_version'")
    before = db.read_bytes()
    for command in DAMAGE_COMMANDS:
        one_line_error(runner.invoke(app, [*command, "-w", str(full_workspace)]),
                       "damaged (schema_version is 'six', not a number)")
    assert db.read_bytes() == before


@pytest.mark.parametrize("table", ["samples", "tools", "eval_runs"])
def test_a_dropped_table(table, full_workspace, runner):
    db = full_workspace / "looptool.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.read_bytes()
    for command in DAMAGE_COMMANDS:
        one_line_error(runner.invoke(app, [*command, "-w", str(full_workspace)]), f"damaged (table {table} missing)")
    assert db.read_bytes() == before


def test_a_damaged_page_met_after_the_open_is_one_line_at_the_cli(workspace, runner, monkeypatch):
    # Damage the open check cannot see (it reads only the meta table) surfaces in the middle of a
    # command as sqlite3.DatabaseError; the CLI's one wrapper turns it into the same line.
    from looptool.store import Store as StoreClass

    def malformed(self, *args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(StoreClass, "tool_records", malformed)
    one_line_error(runner.invoke(app, ["tools", "list", "-w", str(workspace)]),
                   "looptool.db is damaged (database disk image is malformed)")


# ---------------------------------------------------------------------------------------------
# 3. HTTP 200 with a body that is not a completion: an endpoint error, retried, never an answer

NOT_COMPLETIONS = {
    "html": (b"<html><body>502 Bad Gateway</body></html>", "a body that is not JSON (text/html"),
    "binary": (bytes(range(256)), "a body that is not JSON"),
    "empty": (b"", "an empty body"),
    "no_choices": ({"choices": []}, "'choices': []"),
    "not_an_object": ([1, 2], "no 'choices' list"),
    "choice_without_message": ({"choices": [{"index": 0}]}, "a choice without a"),
}


def answer(path: str, body: dict, text: str = "[]") -> tuple[int, dict]:
    """A real completion of either kind, saying `text`."""
    if path.endswith("/chat/completions"):
        return 200, chat_reply(text)
    return 200, {"id": "x", "object": "text_completion", "created": 0, "model": "m",
                 "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}]}


@pytest.mark.parametrize("kind", sorted(NOT_COMPLETIONS))
def test_a_200_that_is_not_a_completion_is_retried_then_one_line(kind, fake_openai, monkeypatch):
    import asyncio

    from looptool.serving import client
    from looptool.serving.server import ServingError

    monkeypatch.setattr(client, "RETRY_BASE_DELAY_S", 0.0)
    body, fragment = NOT_COMPLETIONS[kind]
    endpoint = dataclasses.replace(fake_openai.endpoint, max_retries=1)
    calls = [
        lambda: asyncio.run(client.acomplete(endpoint, [{"role": "user", "content": "x"}])),
        lambda: asyncio.run(client.acomplete_prompt(endpoint, "x")),
        lambda: asyncio.run(client.acomplete_json(endpoint, [("user", "x")], {"type": "object"})),
        lambda: client.structured_json(endpoint, [("user", "x")], {"type": "object"}),
        lambda: client.prompt_logprobs(endpoint, "x"),
    ]
    for call in calls:
        fake_openai.requests.clear()
        fake_openai.replies = [(200, body)] * (endpoint.max_retries + 1)
        with pytest.raises(ServingError) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message and fragment in message and "answered HTTP 200 with" in message, message
        assert endpoint.base_url in message
        assert len(fake_openai.requests) == endpoint.max_retries + 1  # retried, then given up
    # A server that recovers within the retries gives its answer.
    fake_openai.replies = [(200, body)]
    fake_openai.responder = answer
    assert asyncio.run(client.acomplete(endpoint, [{"role": "user", "content": "x"}])).content == "[]"


def broken_endpoint_ws(workspace: Path, fake_openai) -> Path:
    role = f"kind = 'endpoint'\nbase_url = '{fake_openai.endpoint.base_url}'\nmodel = 'm'\n"
    (workspace / "looptool.toml").write_text(
        "[serving]\nmax_retries = 1\n" + "".join(f"[{r}]\n{role}" for r in ("policy", "generator", "judge")))
    return workspace


@pytest.mark.parametrize("kind", ["html", "no_choices"])
def test_eval_never_stores_a_broken_body_and_a_rerun_stores_the_answer(kind, workspace, runner, fake_openai):
    ws = broken_endpoint_ws(workspace, fake_openai)
    body, fragment = NOT_COMPLETIONS[kind]
    fake_openai.responder = lambda path, request: (200, body)
    before = db_bytes(ws)
    command = ["eval", "bfcl", "--categories", "simple", "--limit", "2", "--concurrency", "1", "-w", str(ws)]
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0] and fake_openai.endpoint.base_url in errors[0], result.output
    assert "Traceback" not in result.output
    with Store.open(ws / "looptool.db") as store:
        assert store.counts()["eval_results"] == 0  # no failed entry stands for the broken answer
    del before  # the run row itself may be stored: it holds no answer
    fake_openai.responder = lambda path, request: answer(path, request, "[math.factorial(number=5)]")
    again = runner.invoke(app, command)
    assert again.exit_code == 0, again.output
    with Store.open(ws / "looptool.db") as store:
        (run,) = store.eval_runs("bfcl")
        outputs = [r["output"] for r in store.eval_results(run["id"])]
    assert outputs == ["[math.factorial(number=5)]"] * 2


@pytest.mark.slow
@pytest.mark.parametrize("command", [["tools", "synth", "--n", "2", "--concurrency", "1"],
                                     ["seed", "--n", "1", "--concurrency", "1"]])
def test_synth_and_seed_say_the_endpoint_is_broken(command, workspace, runner, fake_openai, tmp_path):
    ws = broken_endpoint_ws(workspace, fake_openai)
    if command[0] == "seed":
        tools = tmp_path / "t.json"
        tools.write_text(json.dumps([{"name": "get_weather", "description": "Weather in a city",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                     "required": ["city"]}}]))
        assert runner.invoke(app, ["tools", "import", str(tools), "-w", str(ws)]).exit_code == 0
    fake_openai.responder = lambda path, request: (200, b"<html>oops</html>")
    with Store.open(ws / "looptool.db") as store:
        before = store.counts()
    result = runner.invoke(app, [*command, "-w", str(ws)])
    with Store.open(ws / "looptool.db") as store:
        after = store.counts()
        # Nothing is made of the broken answers. Seed files its dialogue before asking anything
        # (that is what a rerun resumes); it stays unfinished, not dropped for the endpoint's fault.
        statuses = store.dialogue_counts_by_status()
    assert {k: v for k, v in after.items() if k != "dialogues"} == {k: v for k, v in before.items() if k != "dialogues"}
    assert "done" not in statuses and "dropped" not in statuses, statuses
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "answered HTTP 200 with a body that is not JSON" in errors[0], result.output


# ---------------------------------------------------------------------------------------------
# 5 (Java). The BFCL Java literal converter is linear too

JAVA_AS_LIST = r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)"
JAVA_ADD_BLOCK = r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}"  # DOTALL
JAVA_ADD = r"add\((.+?)\)"
JAVA_ARRAY = r"new\s+\w+\[\]\s*\{(.*?)\}"
JAVA_MAP = r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}"  # DOTALL
JAVA_PUT = r"put\(\"(.*?)\",\s*(.*?)\)"
JAVA_EMPTY_MAP = r"new\s+HashMap<.*?>\s*\(\)"


@pytest.mark.parametrize(
    ("literal", "type_name"),
    [
        ("new ArrayList<>(Arrays.asList(" * 5_000, "ArrayList"),  # ~150 KB; minutes before
        ("new ArrayList<>() {{ " * 7_500, "ArrayList"),
        ("new ArrayList<>() {{ " + "add(" * 40_000, "ArrayList"),
        ("new int[] {" * 13_000, "Array"),
        ("new HashMap<" * 13_000, "HashMap"),
        ("new HashMap<>() {" + "put(\"" * 30_000, "HashMap"),
        ("new HashMap<>() {" + "put(\"k\"," * 20_000, "HashMap"),
        ("new HashMap<" + ">" * 150_000, "HashMap"),
    ],
)
def test_java_conversion_is_linear(literal, type_name):
    import time

    from looptool.eval.bfcl_literals import java_to_python

    started = time.process_time()
    java_to_python(literal, type_name, "String" if type_name == "ArrayList" else None)
    assert time.process_time() - started < 2.0


def test_java_scanners_match_the_official_patterns():
    import re

    from looptool.eval import bfcl_literals as literals

    def group(match):
        return match.group(1) if match else None

    tokens = ["new ", "new  ", "ArrayList<>", "ArrayList<S>", "(Arrays.asList(", "(", ")", "))", "()", "{", "}", "{{",
              "}}", " ", "\n", "\t", "add(", 'put("', '",', ", ", ",", '"', "int[]", " int[]", "HashMap<", ">", "<",
              "a", "1", ";"]
    rng = random.Random(5)
    for _ in range(4000):
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 25)))
        assert literals._java_as_list(text) == group(re.search(JAVA_AS_LIST, text)), text
        assert literals._java_add_block(text) == group(re.search(JAVA_ADD_BLOCK, text, re.DOTALL)), text
        assert literals._java_adds(text) == re.findall(JAVA_ADD, text), text
        assert literals._java_array_body(text) == group(re.search(JAVA_ARRAY, text)), text
        assert literals._java_map_body(text) == group(re.search(JAVA_MAP, text, re.DOTALL)), text
        assert literals._java_puts(text) == re.findall(JAVA_PUT, text), text
        assert literals._java_empty_map(text) == bool(re.search(JAVA_EMPTY_MAP, text)), text


# ---------------------------------------------------------------------------------------------
# Property: every file importer, fed random JSON, random bytes and deep structures, ends either
# in success or in the project's own one-line error, never a traceback, each within a time bound.
# (`seed` reads no user file: its only inputs are the workspace and the model's answers, which
# the tests of defect 3 and schema.load_json's tests cover.)

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["name", "description", "parameters", "type", "properties", "required", "function", "tools",
                     "id", "output", "items", "enum", "$ref", "default", "x"]) | st.text(max_size=8),
    inner, max_size=4), max_leaves=25)
# Values shaped like each format, so the importers get past their first check.
_shaped = st.one_of(
    _json,
    st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": _json})),
    st.fixed_dictionaries({"tools": st.lists(st.fixed_dictionaries({"name": st.text(max_size=10), "inputSchema": _json}))}),
    st.fixed_dictionaries({"id": st.sampled_from(["simple_0", "java_1", "javascript_2", "x"]), "function": st.lists(_json)}),
    st.fixed_dictionaries({"name": st.from_regex(r"[a-z_]{1,8}", fullmatch=True), "description": st.text(max_size=10),
                           "parameters": _json}),
    st.fixed_dictionaries({"id": st.sampled_from(["simple_0", "java_1", "javascript_2", "live_simple_0-0-0"]),
                           "output": st.text(max_size=200) | _json.map(json.dumps)}),
)


def _deep(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


_payloads = st.one_of(
    _shaped.map(lambda v: json.dumps(v).encode()),
    st.lists(_shaped, min_size=2, max_size=4).map(lambda vs: "\n".join(json.dumps(v) for v in vs).encode()),
    st.binary(max_size=300),
    st.builds(_deep, st.integers(1, 100_000), st.sampled_from(["list", "dict"])).map(str.encode),
    st.builds(lambda d: json.dumps({"id": "simple_0", "output": _deep(d, "list")}), st.integers(1, 50_000)).map(str.encode),
)


@pytest.fixture(scope="module")
def property_ws(tmp_path_factory):
    from typer.testing import CliRunner

    ws = tmp_path_factory.mktemp("prop") / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    return ws


def _own_outcome(result, elapsed: float) -> None:
    # CPU time of this process (CliRunner runs the command in it): the machine the tests run on
    # may be busy, and wall time would measure the other jobs.
    assert elapsed < 5.0, f"took {elapsed:.1f}s of CPU"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 1:
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in result.output, result.output


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(payload=_payloads, on_duplicate=st.sampled_from(["refuse", "skip", "replace"]))
def test_property_every_importer_ends_in_its_own_one_line_error(payload, on_duplicate, property_ws, tmp_path_factory):
    import time

    from typer.testing import CliRunner

    runner = CliRunner()
    path = tmp_path_factory.mktemp("in") / "input.json"
    path.write_bytes(payload)
    started = time.process_time()
    result = runner.invoke(app, ["tools", "import", str(path), "-w", str(property_ws), "--on-duplicate", on_duplicate])
    _own_outcome(result, time.process_time() - started)
    nowhere = tmp_path_factory.mktemp("no-ws")  # --outputs needs no workspace
    started = time.process_time()
    result = runner.invoke(app, ["eval", "bfcl", "--outputs", str(path), "-w", str(nowhere)])
    _own_outcome(result, time.process_time() - started)


# ---------------------------------------------------------------------------------------------
# 11. Synth says what happened when every answer was nonsense, and stores unusable expansions


def test_synth_with_nonsense_answers_says_so_and_does_not_ask_again(workspace, runner, fake_openai):
    ws = broken_endpoint_ws(workspace, fake_openai)
    fake_openai.responder = lambda path, request: (200, chat_reply('{"word": "salad"}'))
    command = ["tools", "synth", "--n", "3", "--domain", "weather", "--expand", "1", "-w", str(ws)]
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "answers from the generator was rejected" in errors[0], result.output
    assert "intent lists did not fit their schema" in errors[0] and "ran out" not in errors[0]
    asked = len(fake_openai.requests)
    runner.invoke(app, command)  # the unusable intent lists are answers: not asked for again
    names = [b["response_format"]["json_schema"]["name"] for _, b in fake_openai.requests[asked:]]
    assert "Capabilities" not in names
