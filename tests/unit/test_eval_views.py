"""Where the user's tools stand: held-out results per tool (`eval heldout`, `eval show --by tool`), the
split of every tool (`tools list --split`), and `eval show` comparing runs only on the entries they
share, marking the columns measured on other entries."""

from __future__ import annotations

from pathlib import Path

from looptool.cli import app
from looptool.config import DB_FILE
from looptool.eval.show import compare_runs
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec
from looptool.store import Store
from tests.fakes import chat_reply
from tests.unit.test_eval import policy_toml, user_text


def _tool(name: str) -> ToolSpec:
    return ToolSpec(name=name, description=f"{name}.", parameters={
        "type": "object", "properties": {"where": {"type": "string"}}, "required": ["where"]})


LOCK, THERMO, LIGHTS = _tool("lock_door"), _tool("set_thermostat"), _tool("dim_lights")


def _call(name: str, where: str) -> Label:
    return Label(calls=[ToolCall(name=name, arguments={"where": where})])


def _answer(name: str, where: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {{"where": "{where}"}}}}</tool_call>'


def _sample(text: str, tools: list[ToolSpec], label: Label, split: str = "heldout") -> Sample:
    return Sample(messages=[Message(role="system", content="tools"), Message(role="user", content=text)],
                  tools=tools, label=label, split=split, scenario="single" if label.calls else "irrelevant")


HELDOUT = [
    _sample("lock the front door", [LOCK], _call("lock_door", "front")),
    _sample("lock the back door", [LOCK], _call("lock_door", "back")),
    _sample("warm the hall", [THERMO, LOCK], _call("set_thermostat", "hall")),
    _sample("tell me a joke", [THERMO, LOCK], Label(text="Here is one.")),
]
REPLIES = {"lock the front door": _answer("lock_door", "front"), "lock the back door": _answer("lock_door", "front"),
           "warm the hall": _answer("set_thermostat", "hall"), "tell me a joke": "Why did the door lock itself?"}


def _table_rows(output: str, title: str) -> dict[str, list[str]]:
    """The rows of the text table whose header starts with `title`: first cell -> the other cells."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip() or line.startswith(("[", "†", "stored as")):
            break
        cells = [c for c in line.split("  ") if c.strip()]
        rows[cells[0].strip()] = [c.strip() for c in cells[1:]]
    return rows


def test_eval_heldout_prints_the_results_per_tool(workspace, fake_openai, runner):
    (workspace / "looptool.toml").write_text(policy_toml(fake_openai))
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples(HELDOUT)
    fake_openai.responder = lambda path, body: (200, chat_reply(REPLIES[user_text(body)]))
    result = runner.invoke(app, ["eval", "heldout", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    by_tool = _table_rows(result.stdout, "held-out tool")
    assert by_tool == {"lock_door": ["50.00 (1/2)"], "set_thermostat": ["100.00 (1/1)"],
                       "set_thermostat (no call)": ["100.00 (1/1)"], "lock_door (no call)": ["100.00 (1/1)"]}
    # The same from the stored run, and the scenario table by default.
    shown = runner.invoke(app, ["eval", "show", "-w", str(workspace), "--suite", "heldout", "--by", "tool"])
    assert _table_rows(shown.output, "held-out tool") == by_tool
    assert "held-out scenario" in runner.invoke(app, ["eval", "show", "-w", str(workspace)]).output
    bad = runner.invoke(app, ["eval", "show", "-w", str(workspace), "--by", "domain"])
    assert bad.exit_code == 1 and "--by: unknown grouping 'domain'; use scenario or tool" in bad.output


def test_tools_list_split_says_which_tools_are_held_out(workspace, runner):
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_tools([LOCK, THERMO, LIGHTS, _tool("open_garage")], domain="home", source="import:openai")
        store.upsert_samples([*HELDOUT[:3],
                              _sample("dim the lights", [LIGHTS], _call("dim_lights", "hall"), "train"),
                              _sample("dim the den", [LIGHTS, _tool("play_music")], _call("dim_lights", "den"), "train")])
    plain = runner.invoke(app, ["tools", "list", "-w", str(workspace)])
    assert plain.exit_code == 0 and "heldout" not in plain.output
    result = runner.invoke(app, ["tools", "list", "-w", str(workspace), "--split"])
    assert result.exit_code == 0, result.output
    line = {row.split()[0]: row for row in result.output.splitlines() if row.strip()}
    assert line["lock_door"].endswith("heldout (in 3 samples)") and line["set_thermostat"].endswith("heldout (in 1 sample)")
    assert line["dim_lights"].endswith("train (in 2 samples)") and line["open_garage"].endswith("no samples")
    assert "in samples only" in line["play_music"] and line["play_music"].endswith("train (in 1 sample)")
    assert result.output.strip().splitlines()[-1] == (
        "split: 2 train, 2 heldout, 1 in no sample; 1 of them only in samples (templated tasks)")
    # A tool offered in both splits is a leak, and is said to be one.
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples([_sample("lock the gate", [LOCK], _call("lock_door", "gate"), "train")])
    leak = runner.invoke(app, ["tools", "list", "-w", str(workspace), "--split", "--domain", "home"])
    assert "BOTH: heldout 3, train 1" in leak.output and "1 in both (a held-out tool that training also sees)" in leak.output
    assert "play_music" not in leak.output  # --domain: only that domain's stored tools


def _store_run(store: Store, run_id: str, suite: str, round: int | None, results: dict[str, tuple[str, bool]],
               adapter: str | None = None) -> None:
    store.upsert_eval_run(run_id, suite=suite, model="m", adapter=adapter, round=round, settings={})
    store.add_eval_results(run_id, [{"entry_id": e, "category": c, "passed": ok} for e, (c, ok) in results.items()])
    store.update_eval_scores(run_id)


def test_eval_show_compares_runs_on_the_entries_they_share(workspace, runner):
    ids = [f"{s.id}.v1" for s in HELDOUT]
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples(HELDOUT)
        # The base answered all four (wrong on the second); round 1 only the first two (both right).
        _store_run(store, "eval_base", "heldout", 0, {i: ("single/call", k != 1) for k, i in enumerate(ids)})
        _store_run(store, "eval_r1", "heldout", 1, {i: ("single/call", True) for i in ids[:2]})
        _store_run(store, "eval_r2", "heldout", 2, {i: ("single/call", k < 3) for k, i in enumerate(ids)})
        # BFCL: round 1 with --limit 2, the base and round 2 with --limit 4.
        _store_run(store, "bfcl_base", "bfcl", 0, {f"simple_{k}": ("simple", k % 2 == 0) for k in range(4)})
        _store_run(store, "bfcl_r1", "bfcl", 1, {f"simple_{k}": ("simple", True) for k in range(2)})
        _store_run(store, "bfcl_r2", "bfcl", 2, {f"simple_{k}": ("simple", True) for k in range(4)})
    result = runner.invoke(app, ["eval", "show", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    heldout = _table_rows(result.output, "held-out scenario")
    assert heldout["single/call"] == ["50.00 (1/2)", "100.00 (2/2)", "100.00 (2/2)"]  # the 2 entries all share
    header = next(line for line in result.output.splitlines() if line.startswith("held-out scenario")).split()
    assert header[2:] == ["base", "round", "1†", "round", "2"]  # the column that lacks entries is marked
    assert ("† measured on fewer or other entries than the rest (entries scored: base 4, round 1 2, round 2 4); every "
            "column counts only the 2 entries all runs share (--all-entries: each run on all of its own)") in result.output
    bfcl = _table_rows(result.output, "BFCL-v3 category")
    assert bfcl["simple (400)"] == ["50.00 (1/2*)", "100.00 (2/2*)", "100.00 (2/2*)"]
    # --all-entries: each run on all of its own entries, the columns marked as not comparable.
    every = runner.invoke(app, ["eval", "show", "-w", str(workspace), "--suite", "heldout", "--all-entries"])
    assert _table_rows(every.output, "held-out scenario")["single/call"] == ["75.00 (3/4)", "100.00 (2/2)", "75.00 (3/4)"]
    assert "columns are not comparable" in every.output
    # Runs of the same entries: nothing marked, nothing left out.
    with Store.open(workspace / DB_FILE) as store:
        runs = [r for r in store.eval_runs("heldout") if r["id"] in ("eval_base", "eval_r2")]
        same = compare_runs(runs, [store.eval_results(r["id"]) for r in runs])
    assert same.notes == [] and [len(rows) for rows in same.rows] == [4, 4] and not any("mark" in r for r in same.runs)
    # A run is compared by tool on the same shared entries.
    tools = runner.invoke(app, ["eval", "show", "-w", str(workspace), "--suite", "heldout", "--by", "tool"])
    assert _table_rows(tools.output, "held-out tool")["lock_door"] == ["50.00 (1/2)", "100.00 (2/2)", "100.00 (2/2)"]


def test_eval_show_puts_the_base_then_the_warm_start_then_the_rounds(workspace, runner):
    with Store.open(workspace / DB_FILE) as store:
        _store_run(store, "eval_r1", "heldout", 1, {"e1": ("single/call", True)})
        _store_run(store, "eval_other", "heldout", None, {"e1": ("single/call", False)},
                   adapter="/elsewhere/adapters/round-2")
        _store_run(store, "eval_warm", "heldout", None, {"e1": ("single/call", True)},
                   adapter=str(workspace / "adapters" / "round-1-sft"))
        _store_run(store, "eval_base", "heldout", 0, {"e1": ("single/call", False)})
    result = runner.invoke(app, ["eval", "show", "-w", str(workspace), "--suite", "heldout"])
    header = next(line for line in result.output.splitlines() if line.startswith("held-out scenario"))
    assert header.split()[2:] == ["base", "warm", "start", "adapter", "round-2", "round", "1"], header
    assert _table_rows(result.output, "held-out scenario")["single/call"] == [
        "0.00 (0/1)", "100.00 (1/1)", "0.00 (0/1)", "100.00 (1/1)"]


def test_eval_show_summary_puts_every_suite_side_by_side_a_row_per_model(workspace, runner):
    with Store.open(workspace / DB_FILE) as store:
        _store_run(store, "held_base", "heldout", 0, {"h1": ("single/call", False), "h2": ("irrelevant/text", True)})
        _store_run(store, "held_r1", "heldout", 1, {"h1": ("single/call", True), "h2": ("irrelevant/text", True)})
        _store_run(store, "bfcl_r1", "bfcl", 1, {"simple_0": ("simple", True), "simple_1": ("simple", False)})
        # ACEBench: a multi-turn dialogue counts when all its turns pass (ACEBench's own rule).
        _store_run(store, "ace_r1", "acebench", 1, {
            "normal_atom_bool_0": ("normal_atom_bool", True), "normal_atom_bool_1": ("normal_atom_bool", False),
            "normal_multi_turn_user_adjust_0_0": ("normal_multi_turn_user_adjust", True),
            "normal_multi_turn_user_adjust_0_1": ("normal_multi_turn_user_adjust", False),
            "special_irrelevant_0": ("special_irrelevant", True)})
    result = runner.invoke(app, ["eval", "show", "-w", str(workspace), "--suite", "summary"])
    assert result.exit_code == 0, result.output
    rows = _table_rows(result.output, "model")
    # One row per model, the suites side by side; pooled figures with their 95% Wilson interval.
    assert list(rows) == ["base", "round 1"]
    assert rows["base"][:2] == ["50.0 [9.5, 90.5] 1/2", "0.0 [0.0, 79.3] 0/1"]
    assert rows["base"][2:] == ["-"] * 6  # not measured on BFCL or ACEBench
    held_all, held_calls, bfcl_entries, bfcl_overall, ace_entries, normal, special, weighted = rows["round 1"]
    assert (held_all, held_calls, bfcl_entries) == ("100.0 [34.2, 100.0] 2/2", "100.0 [20.7, 100.0] 1/1",
                                                    "50.0 [9.5, 90.5] 1/2")
    assert bfcl_overall == "50.00 (part)"  # only non-live simple was run
    assert ace_entries == "60.0 [23.1, 88.2] 3/5"
    assert normal == "25.00"  # mean of atom_bool 1/2 and user_adjust 0/1 dialogues
    assert special == "100.00"
    assert weighted == f"{100 * (0.578 * 0.25 + 0.2676 * 1.0) / (0.578 + 0.2676):.2f}"
    # The full view: the summary first, then each suite's own table, ACEBench's with its group rows.
    every = runner.invoke(app, ["eval", "show", "-w", str(workspace)])
    assert every.output.index("ACEBench Normal") < every.output.index("BFCL-v3 category")
    ace = _table_rows(every.output, "ACEBench-en category")
    assert ace["normal_multi_turn_user_adjust"] == ["0.00 (0/1*)"]  # dialogues, not turns
    assert any(line.split() == ["Normal", "(mean", "of", "sub-categories)", "25.00"] for line in every.output.splitlines())
    assert "no ACEBench Overall" in every.output
    bad = runner.invoke(app, ["eval", "show", "-w", str(workspace), "--suite", "everything"])
    assert bad.exit_code != 0 and "--suite: unknown suite 'everything'" in bad.output
