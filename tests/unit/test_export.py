"""Taking the results out: the samples as a dataset (rows, provenance, what --round and --all hold,
the three formats, atomic writes, refusals), the dialogues with their traces, `samples list|show`,
and the chat template an exported model carries, which must render exactly what training renders.

The workspace is the terminal UI's fixture (tests/tui/tui_workspace.py): samples of every origin,
two rounds, probes, verdicts of every kind, a corrected label, an inactive sample, an expansion,
two seed dialogues with agent traces."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import DB_FILE
from looptool.export import data as data_export
from looptool.export.chat_template import looptool_chat_template, with_looptool_template
from looptool.export.data import Selection, openai_messages, sample_from_row, sample_row, select
from looptool.export.dialogues import export_dialogues
from looptool.export.files import ExportError
from looptool.policy.prompt import PromptRenderer, openai_tool, system_message
from looptool.schema import Label, Message, Sample, ToolCall
from looptool.store import Store
from tests.tui.tui_workspace import CURRENCY, TABLE, WEATHER, build

WIDE = {"COLUMNS": "200"}  # rich's tables are as wide as the terminal; the test runner has none


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    ws = tmp_path_factory.mktemp("export") / "ws"
    ids = build(ws)
    with Store.open(ws / DB_FILE) as store:  # one sample whose context has calls and their results
        store.upsert_sample(MULTI_TURN)
    return ws, ids


@pytest.fixture
def ws(built) -> Path:
    return built[0]


@pytest.fixture
def ids(built) -> dict[str, str]:
    return built[1]


def call(name: str, **arguments) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


MULTI_TURN = Sample(
    messages=[system_message([WEATHER, TABLE]), Message(role="user", content="Weather in Zürich and Oslo? Then book."),
              Message(role="assistant", tool_calls=[call("get_weather", city="Zürich"), call("get_weather", city="Oslo")]),
              Message(role="tool", name="get_weather", tool_call_id="call_9_0", content='{"temp": 3}'),
              Message(role="tool", name="get_weather", content='{"temp": -2}'),
              Message(role="assistant", content="3 and -2 degrees."),
              Message(role="user", content="Book Nona's for 2.")],
    tools=[WEATHER, TABLE], label=Label(calls=[call("book_table", restaurant="Nona's", people=2)]), scenario="sequential")


def export(ws: Path, target: Path, *args: str) -> object:
    return CliRunner().invoke(app, ["export", "data", str(target), "-w", str(ws), *args])


def rows_of(target: Path) -> list[dict]:
    return [json.loads(line) for line in (target / data_export.JSONL_FILE).read_text().splitlines()]


# -- rows -------------------------------------------------------------------------------------------


def test_a_row_holds_the_conversation_with_the_label_last_tools_label_and_provenance(ws, ids):
    with Store.open(ws / DB_FILE) as store:
        exported = {e.sample.id: e for e in select(store, Selection())}
        parent = store.get_sample(ids["error_parent"])
    row = sample_row(exported[ids["expanded"]])
    assert row["messages"] == [
        {"role": "user", "content": "What's it like in Bergen right now?"},  # the tool prompt is the template's job
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Bergen"}'}}]}]
    assert row["tools"] == [openai_tool(WEATHER)]
    assert Label.model_validate_json(row["label"]) == Label(calls=[call("get_weather", city="Bergen")])
    p = row["provenance"]
    assert (p["sample_id"], p["origin"], p["round_added"], p["parent_id"], p["split"]) == \
        (ids["expanded"], "expanded", 2, parent.id, "train")
    assert p["verdict"] == "BOTH_OK" and p["verdicts"] == [{"round": 2, "verdict": "BOTH_OK", "basis": "judge"}]
    assert p["label_version"] == 1 and p["label_history"] == [] and p["active"] is True

    luigi = sample_row(exported[ids["luigi"]])  # a reply with no call: the label is the assistant's text
    assert luigi["messages"][-1] == {"role": "assistant", "content": "For how many people?"}
    assert luigi["provenance"]["dialogue_id"] == "d_booking" and luigi["provenance"]["verdict"] is None


def test_calls_take_the_ids_of_the_results_that_answer_them(ws):
    messages = openai_messages(MULTI_TURN.messages, MULTI_TURN.label)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "assistant", "user", "assistant"]
    first, second = messages[1]["tool_calls"]
    assert first["id"] == "call_9_0" and messages[2]["tool_call_id"] == "call_9_0"
    assert second["id"] == "call_1_1" and messages[3]["tool_call_id"] == "call_1_1"  # the result had no id of its own
    assert json.loads(first["function"]["arguments"]) == {"city": "Zürich"}
    assert messages[-1]["tool_calls"][0]["id"] == "call_6_0"


def test_a_row_gives_back_the_sample_it_was_made_from(ws):
    with Store.open(ws / DB_FILE) as store:
        for e in select(store, Selection(all=True)):
            back = sample_from_row(json.loads(json.dumps(sample_row(e))))
            original = e.sample
            assert back.id == original.id and back.tools == original.tools and back.label == original.label
            assert back.messages[0] == system_message(original.tools)  # the tool prompt, rebuilt
            # Up to the agents that wrote the messages, and the ids given to results that had none.
            assert [m.model_copy(update={"agent": None, "tool_call_id": None}) for m in back.messages[1:]] == \
                [m.model_copy(update={"agent": None, "tool_call_id": None}) for m in original.messages[1:]]
            assert all(o.tool_call_id in (None, b.tool_call_id) for o, b in zip(original.messages, back.messages))
            assert back.model_dump(exclude={"messages"}) == original.model_dump(exclude={"messages"})


# -- which samples ----------------------------------------------------------------------------------


def test_by_default_the_active_samples_with_their_current_labels(ws, tmp_path):
    result = export(ws, tmp_path / "out", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = rows_of(tmp_path / "out")
    with Store.open(ws / DB_FILE) as store:
        active = {s.id: s for s in store.iter_samples(active=True)}
    assert [r["provenance"]["sample_id"] for r in rows] == sorted(active) and len(active) == 14
    assert all(Label.model_validate_json(r["label"]) == active[r["provenance"]["sample_id"]].label for r in rows)
    assert all(r["provenance"]["active"] for r in rows)
    manifest = json.loads((tmp_path / "out" / data_export.MANIFEST_FILE).read_text())
    assert manifest["rows"] == 14 and manifest["selection"] == "the active samples"


def test_round_r_is_the_data_it_trained_on_with_the_labels_it_had_then(ws, tmp_path):
    with Store.open(ws / DB_FILE) as store:
        rounds = {r.n: r for r in store.rounds()}
        relabelled = next(s for s in store.iter_samples() if s.label_version == 2)  # round 1's LABEL_WRONG
        history = store.label_history(relabelled.id)
        inactive = next(s for s in store.iter_samples(active=False))
    assert export(ws, tmp_path / "r1", "--round", "1", "--format", "jsonl").exit_code == 0
    r1 = rows_of(tmp_path / "r1")
    assert [r["provenance"]["sample_id"] for r in r1] == rounds[1].data_ids  # its data, in its order
    by_id = {r["provenance"]["sample_id"]: r for r in r1}
    old = by_id[relabelled.id]
    assert Label.model_validate_json(old["label"]) == history[0]["label"] != relabelled.label
    assert old["provenance"]["label_version"] == 1 and old["provenance"]["label_history"] == []
    assert old["provenance"]["verdicts"] == []  # round 1's verdicts came after it trained
    assert by_id[inactive.id]["provenance"]["active"] is False  # taken out later, but round 1 trained on it

    assert export(ws, tmp_path / "r2", "--round", "2", "--format", "jsonl").exit_code == 0
    r2 = {r["provenance"]["sample_id"]: r for r in rows_of(tmp_path / "r2")}
    assert list(r2) == rounds[2].data_ids
    new = r2[relabelled.id]  # round 2 trained on the corrected label
    assert Label.model_validate_json(new["label"]) == relabelled.label and new["provenance"]["label_version"] == 2
    assert [h["label_version"] for h in new["provenance"]["label_history"]] == [1]
    assert [v["round"] for v in new["provenance"]["verdicts"]] == [1]  # round 2's own verdict came after


def test_all_adds_the_inactive_samples_and_split_keeps_one_split(ws, tmp_path):
    assert export(ws, tmp_path / "all", "--all", "--format", "jsonl").exit_code == 0
    rows = rows_of(tmp_path / "all")
    assert len(rows) == 15 and sum(not r["provenance"]["active"] for r in rows) == 1
    assert export(ws, tmp_path / "held", "--split", "heldout", "--format", "jsonl").exit_code == 0
    held = rows_of(tmp_path / "held")
    assert len(held) == 2 and {r["provenance"]["split"] for r in held} == {"heldout"}
    assert export(ws, tmp_path / "r1train", "--round", "1", "--split", "train", "--format", "jsonl").exit_code == 0
    assert len(rows_of(tmp_path / "r1train")) == 10


def test_a_round_recorded_without_data_trained_on_every_active_training_sample(ws, tmp_path):
    from looptool.schema import Round

    copy_ws = tmp_path / "ws"
    shutil.copytree(ws, copy_ws)
    with Store.open(copy_ws / DB_FILE) as store:  # as 'looptool train grpo --round 3' records it
        store.upsert_round(Round(n=3, status="done", adapter_path="adapters/round-3"))
        expected = [s.id for s in store.iter_samples(split="train", active=True)]
        assert [e.sample.id for e in select(store, Selection(round=3))] == expected


# -- formats ----------------------------------------------------------------------------------------


def test_the_three_formats_hold_the_same_rows_and_load_with_datasets(ws, tmp_path):
    from datasets import load_dataset, load_from_disk

    for fmt in ("hf", "jsonl", "parquet"):
        result = export(ws, tmp_path / fmt, "--all", "--format", fmt)
        assert result.exit_code == 0, result.output
        assert "exported 15 samples" in result.stdout
    rows = rows_of(tmp_path / "jsonl")
    assert [dict(r) for r in load_from_disk(str(tmp_path / "hf"))] == rows
    cache = str(tmp_path / "cache")  # datasets' cache, kept out of the user's
    parquet = load_dataset("parquet", data_files=str(tmp_path / "parquet" / data_export.PARQUET_FILE), split="train",
                           cache_dir=cache)
    assert [dict(r) for r in parquet] == rows
    as_json = load_dataset("json", data_files=str(tmp_path / "jsonl" / data_export.JSONL_FILE), split="train",
                           cache_dir=cache)
    assert as_json.num_rows == 15
    assert [[m["role"] for m in r["messages"]] for r in as_json] == [[m["role"] for m in r["messages"]] for r in rows]


# -- writing ----------------------------------------------------------------------------------------


def test_a_directory_with_files_is_refused_unless_forced(ws, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = export(ws, target, "--format", "jsonl")
    assert result.exit_code == 1 and result.output.startswith(f"error: {target} is not empty")
    assert result.output.count("\n") == 1 and sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert export(ws, target, "--format", "jsonl", "--force").exit_code == 0
    assert sorted(p.name for p in target.iterdir()) == [data_export.JSONL_FILE, data_export.MANIFEST_FILE]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(ws, empty, "--format", "jsonl").exit_code == 0  # an empty directory is fine
    (tmp_path / "file").write_text("x")
    result = export(ws, tmp_path / "file", "--format", "jsonl")
    assert result.exit_code == 1 and "is a file, not a directory" in result.output


def test_an_export_that_fails_midway_leaves_nothing_behind(ws, tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.jsonl").write_text("the previous export\n")

    def half_written(rows, out, fmt):
        (out / data_export.JSONL_FILE).write_text(json.dumps(rows[0]) + "\n")
        raise OSError(28, "No space left on device", str(out / data_export.JSONL_FILE))

    monkeypatch.setattr(data_export, "write_rows", half_written)
    result = export(ws, target, "--format", "jsonl", "--force")
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert [p.name for p in target.iterdir()] == ["old.jsonl"]  # the old export as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary directory left


@pytest.mark.parametrize("args, message", [
    (["--round", "7"], "error: round 7 does not exist in"),
    (["--round", "0"], "error: --round must be 1 or more"),
    (["--round", "1", "--all"], "error: give --round or --all, not both"),
    (["--split", "test"], "error: --split: unknown split 'test'; use train or heldout"),
    (["--format", "csv"], "error: --format: unknown format 'csv'; use hf, jsonl, parquet"),
    (["--round", "1", "--split", "heldout"], "error: no samples to export: round 1's data, heldout split holds none"),
])
def test_bad_requests_are_one_line_errors_and_write_nothing(ws, tmp_path, args, message):
    result = export(ws, tmp_path / "out", *args)
    assert result.exit_code == 1 and result.output.startswith(message), result.output
    assert result.output.count("\n") == 1 and not (tmp_path / "out").exists()


def test_an_unknown_workspace_is_a_one_line_error(tmp_path):
    result = export(tmp_path / "nowhere", tmp_path / "out")
    assert result.exit_code == 1 and result.output.startswith("error: ") and "looptool init" in result.output
    assert not (tmp_path / "out").exists()


# -- dialogues --------------------------------------------------------------------------------------


def test_dialogues_are_exported_with_their_turns_and_agent_traces(ws, tmp_path, ids):
    result = CliRunner().invoke(app, ["export", "dialogues", str(tmp_path / "d"), "-w", str(ws)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "d" / "dialogues.jsonl").read_text().splitlines()]
    assert [d["id"] for d in lines] == ["d_weather", "d_booking"]
    weather, booking = lines
    assert weather["status"] == "done" and weather["plan"]["goal"] == "know the weather in Oslo"
    assert [t["function"]["name"] for t in weather["tools"]] == ["get_weather"]
    assert [(t["role"], t["agent"]) for t in weather["turns"]] == [
        ("user", "user"), ("assistant", "assistant"), ("tool", "tool"), ("assistant", "assistant")]
    assert weather["turns"][1]["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert weather["turns"][0]["latency_ms"] == 120.0 and weather["turns"][0]["model"] == "smollm2-135m-instruct"
    keys = [t["call_key"] for t in weather["traces"]]
    assert keys == ["plan.a0", "m0.user.a0", "m1.assistant.s0.a0", "m1.assistant.s0.a1", "m2.tool.a0"]
    failed = weather["traces"][2]
    assert failed["status"] == "error" and "not valid JSON" in failed["error"] and failed["parsed"] is None
    assert weather["samples"] == [ids["oslo"]]
    assert booking["status"] == "dropped" and booking["error"] == "the assistant never called book_table"

    assert export_dialogues(ws, tmp_path / "done", status="done", log=lambda *_: None) == 1
    with pytest.raises(ExportError, match="no dialogues to export .* with status failed"):
        export_dialogues(ws, tmp_path / "none", status="failed", log=lambda *_: None)
    bad = CliRunner().invoke(app, ["export", "dialogues", str(tmp_path / "x"), "-w", str(ws), "--status", "odd"])
    assert bad.exit_code == 1 and bad.output.startswith("error: --status: unknown status 'odd'")
    assert not (tmp_path / "none").exists() and not (tmp_path / "x").exists()


# -- samples list / show ----------------------------------------------------------------------------


def listed(ws: Path, *args: str) -> list[str]:
    result = CliRunner().invoke(app, ["samples", "list", "-w", str(ws), *args], env=WIDE)
    assert result.exit_code == 0, result.output
    return [line.split()[0] for line in result.stdout.splitlines()[1:-1]]


def test_samples_list_filters_as_the_samples_screen_does(ws, ids):
    with Store.open(ws / DB_FILE) as store:
        for filters, args in [
            ({}, []),
            ({"verdict": "PRED_WRONG", "probe_round": 1}, ["--verdict", "PRED_WRONG", "--probe-round", "1"]),
            ({"origin": "expanded"}, ["--origin", "expanded"]),
            ({"split": "heldout"}, ["--split", "heldout"]),
            ({"tool": "book_table"}, ["--tool", "book_table"]),
            ({"round_added": 2}, ["--round-added", "2"]),
            ({"category": "failed", "scenario": "single"}, ["--category", "failed", "--scenario", "single"]),
            ({"search": "bergen"}, ["--search", "bergen"]),
        ]:
            rows, total = store.sample_page(**filters)
            assert total > 0 and listed(ws, *args) == [r["id"] for r in rows], args
    assert listed(ws, "--origin", "expanded") == [ids["expanded"]]
    result = CliRunner().invoke(app, ["samples", "list", "-w", str(ws), "--limit", "3", "--offset", "2"], env=WIDE)
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and lines[-1] == "3 of 15 matching samples shown (from 3); the next: --offset 5"
    assert "label" in lines[0] and "verdict" in lines[0]


def test_samples_list_shows_labels_as_calls_and_refuses_unknown_values(ws, ids):
    result = CliRunner().invoke(app, ["samples", "list", "-w", str(ws), "--origin", "expanded"], env=WIDE)
    assert "[get_weather(city='Bergen')]" in result.stdout and "BOTH_OK" in result.stdout
    for option, value, choices in [("--origin", "grown", "seed, corrected, expanded"), ("--verdict", "WRONG", "LABEL_WRONG"),
                                   ("--split", "dev", "train, heldout"), ("--category", "hard", "mastered")]:
        bad = CliRunner().invoke(app, ["samples", "list", "-w", str(ws), option, value])
        assert bad.exit_code == 1 and bad.output.startswith(f"error: {option}: unknown") and choices in bad.output


def test_samples_show_prints_one_sample_with_its_history_probes_verdicts_and_expansions(ws, ids):
    with Store.open(ws / DB_FILE) as store:
        relabelled = next(s for s in store.iter_samples() if s.label_version == 2)
    result = CliRunner().invoke(app, ["samples", "show", relabelled.id[:9], "-w", str(ws)], env=WIDE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"sample {relabelled.id}" in out and "label v2" in out and "Convert 5 dollars to euros." in out
    assert "convert_currency: Convert an amount between currencies." in out and '"amount": {"type": "number"}' in out
    assert "[convert_currency(amount=5, to='USD')]" in out  # the label now
    assert "v1 (round 1: LABEL_WRONG): [convert_currency(amount=5, to='EUR')]" in out  # and before
    assert "round 1: LABEL_WRONG by judge on label v1" in out and "round 2: wrong, failed" in out
    parent = CliRunner().invoke(app, ["samples", "show", ids["error_parent"], "-w", str(ws)], env=WIDE).stdout
    assert f"round 1 slot 0: kept (persona) -> {ids['expanded']}" in parent and "round 1 slot 1: rejected" in parent
    ambiguous = CliRunner().invoke(app, ["samples", "show", "s_", "-w", str(ws)])
    assert ambiguous.exit_code == 1 and ambiguous.output.startswith("error: 's_' starts more than 10 sample ids")
    missing = CliRunner().invoke(app, ["samples", "show", "s_nothing", "-w", str(ws)])
    assert missing.exit_code == 1 and missing.output.startswith("error: no sample with id 's_nothing'")


# -- the exported chat template ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from looptool.embedded import materialise

    return AutoTokenizer.from_pretrained(str(materialise(log=lambda *a: None)))


@pytest.mark.slow
@pytest.mark.parametrize("template, thinking", [("own", "off"), ("qwen3-style", "off"), ("qwen3-style", "on")])
def test_the_exported_template_renders_what_the_renderer_renders(ws, smollm2_tokenizer, template, thinking):
    """For every sample of the workspace (calls, parallel calls, replies, a conversation with
    results): the exported tokenizer's `apply_chat_template` on the exported row gives exactly the
    prompt LoopTool trains on, and, with the label, the text SFT learns; with a system message of
    the conversation's own, what the renderer makes of it as a note (BFCL's live entries)."""
    base = copy.deepcopy(smollm2_tokenizer)
    if template == "qwen3-style":
        base.chat_template = (Path(__file__).parent.parent / "qwen3_style_template.jinja").read_text()
    renderer = PromptRenderer(base, thinking=thinking)  # type: ignore[arg-type]
    exported = with_looptool_template(copy.deepcopy(base), thinking=thinking)  # type: ignore[arg-type]
    with Store.open(ws / DB_FILE) as store:
        samples = [e.sample for e in select(store, Selection(all=True))]
    assert len(samples) == 15 and any(len(s.messages) > 3 for s in samples)
    for s in samples:
        row = sample_row(data_export.Exported(s, [], []))
        prompt = exported.apply_chat_template(row["messages"][:-1], tools=row["tools"], add_generation_prompt=True,
                                              tokenize=False)
        assert prompt == renderer.render(s.messages, s.tools), s.id
        answered = exported.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        turn = Message(role="assistant", content=s.label.text, tool_calls=s.label.calls)
        assert answered == renderer.render([*s.messages, turn], s.tools, add_generation_prompt=False), s.id
        note = [{"role": "system", "content": "Today is 2026-01-02."}]
        assert exported.apply_chat_template(note + row["messages"][:-1], tools=row["tools"], add_generation_prompt=True,
                                            tokenize=False) == renderer.render(s.messages, s.tools,
                                                                               system_note="Today is 2026-01-02.")
    # LoopTool itself prompts an exported model as it prompted the base (its template now takes tools).
    again = PromptRenderer(exported, thinking=thinking)  # type: ignore[arg-type]
    assert again.native_tools and again.render(MULTI_TURN.messages, MULTI_TURN.tools) == \
        renderer.render(MULTI_TURN.messages, MULTI_TURN.tools)


def test_the_template_takes_arguments_as_text_or_objects_and_tools_in_either_form(smollm2_tokenizer):
    exported = with_looptool_template(copy.deepcopy(smollm2_tokenizer))
    renderer = PromptRenderer(smollm2_tokenizer)
    messages = [{"role": "user", "content": "Convert 5 to EUR"},
                {"role": "assistant", "tool_calls": [{"function": {"name": "convert_currency",
                                                                   "arguments": {"amount": 5, "to": "EUR"}}}]},
                {"role": "tool", "content": "4.6"}, {"role": "user", "content": "thanks"}]
    bare = [CURRENCY.model_dump(exclude={"returns"})]  # a bare function, as transformers also accepts
    got = exported.apply_chat_template(messages, tools=bare, add_generation_prompt=True, tokenize=False)
    history = [Message(role="user", content="Convert 5 to EUR"),
               Message(role="assistant", tool_calls=[call("convert_currency", amount=5, to="EUR")]),
               Message(role="tool", content="4.6"), Message(role="user", content="thanks")]
    assert got == renderer.render(history, [CURRENCY])
    assert '<tool_call>\n{"name": "convert_currency", "arguments": {"amount": 5, "to": "EUR"}}\n</tool_call>' in got


def test_a_tokenizer_without_a_chat_template_has_nothing_to_export():
    with pytest.raises(ExportError, match="no chat template"):
        looptool_chat_template(None)
