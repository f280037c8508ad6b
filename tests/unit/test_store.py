"""Tests for looptool.store: schema, round trips, idempotent upserts, transactions, concurrency."""

from __future__ import annotations

import hashlib
import sqlite3
import threading

import pytest

from looptool.schema import (
    Dialogue,
    Label,
    Message,
    Probe,
    Round,
    RoundMetrics,
    Sample,
    ToolCall,
    ToolSpec,
    Verdict,
    canonical_json,
)
from looptool.store import SCHEMA_VERSION, TABLES, Store, StoreError
from looptool.store import base as store_base  # where opening a file reads SCHEMA_VERSION and MIGRATIONS

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = ToolSpec(name="get_time", description="Current time.")


def make_sample(text: str = "weather in Paris?", **kw) -> Sample:
    return Sample(
        messages=[Message(role="system", content="be helpful"), Message(role="user", content=text)],
        tools=[WEATHER],
        label=Label(calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})]),
        **kw,
    )


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "ws" / "looptool.db"


@pytest.fixture
def st(db_path):
    with Store.create(db_path) as s:
        yield s


def raw(db_path) -> sqlite3.Connection:
    return sqlite3.connect(str(db_path))


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- open / create ---------------------------------------------------------------------------------


def test_missing_file_raises(tmp_path):
    path = tmp_path / "nope.db"
    with pytest.raises(StoreError, match="no LoopTool database at .*run 'looptool init' first"):
        Store(path)
    with pytest.raises(StoreError):
        Store.open(path)
    assert not path.exists()


def test_create_then_open(db_path):
    Store.create(db_path).close()
    assert db_path.is_file()
    with Store.open(db_path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert s.db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
        assert s.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    Store.create(db_path).close()  # creating again is harmless


def test_foreign_file_raises(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        Store(junk)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE x (a)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a LoopTool database"):
        Store(other)


def test_open_does_not_modify_file(db_path):
    with Store.create(db_path) as s:
        s.upsert_tool(WEATHER)
    before = (sha(db_path), db_path.stat().st_mtime_ns)
    with Store(db_path) as s:
        s.counts()
        s.tool_records()
    assert (sha(db_path), db_path.stat().st_mtime_ns) == before


def test_every_table_and_index_exists(st):
    names = set(st.db.table_names())
    assert set(TABLES) | {"meta"} <= names
    assert not any(n.startswith("checkpoint") for n in names)
    indexes = {
        t: {tuple(i.columns) for i in st.db[t].indexes if not i.name.startswith("sqlite_autoindex")}
        for t in TABLES
    }
    assert indexes["tools"] == {("name",), ("domain",)}
    assert indexes["dialogues"] == {("status",)}
    assert indexes["samples"] == {
        ("origin",), ("round_added",), ("active",), ("parent_id",), ("dialogue_id",), ("split",)
    }
    assert indexes["probes"] == {("round", "category")}
    assert indexes["verdicts"] == {("round", "verdict")}
    assert indexes["events"] == {("ts",)}
    assert st.db["messages"].pks == ["dialogue_id", "idx"]
    assert st.db["traces"].pks == ["dialogue_id", "call_key"]
    assert st.db["probes"].pks == ["sample_id", "round"]
    assert st.db["verdicts"].pks == ["sample_id", "round"]
    assert st.db["rounds"].pks == ["n"]
    assert st.db["samples"].columns_dict["round_added"] is int


def test_version_1_file_is_migrated_and_keeps_its_rows(db_path):
    db_path.parent.mkdir(parents=True)
    con = sqlite3.connect(db_path)
    for statement in store_base.SCHEMA_SQL:
        con.execute(statement)
    con.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    con.execute(
        "INSERT INTO samples (id, origin, round_added, messages_json, tools_json, label_json, label_version, active,"
        " created_at, updated_at) VALUES ('s_1', 'seed', 0, ?, '[]', ?, 1, 1, 'x', 'x')",
        ['[{"role": "user", "content": "hi"}]', '{"calls": [], "text": "hello"}'],
    )
    con.commit()
    con.close()
    with Store(db_path) as s:
        assert s.schema_version() == SCHEMA_VERSION == 7
        sample = s.get_sample("s_1")
        assert (sample.split, sample.scenario) == ("train", None)
        assert "masked" in s.db["messages"].columns_dict
        assert {"eval_runs", "eval_results", "eval_scores", "train_steps", "label_history"} <= set(s.db.table_names())
        assert "traces" in s.db.table_names()


def test_newer_schema_raises(db_path):
    Store.create(db_path).close()
    con = raw(db_path)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer LoopTool"):
        Store(db_path)


def test_migration_hook(db_path, monkeypatch):
    Store.create(db_path).close()
    calls = []

    def to_v2(db):
        calls.append(2)
        db.execute("ALTER TABLE rounds ADD COLUMN notes TEXT")

    monkeypatch.setattr(store_base, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(store_base, "MIGRATIONS", {SCHEMA_VERSION: to_v2})
    with Store(db_path) as s:
        assert s.schema_version() == SCHEMA_VERSION + 1
        assert "notes" in s.db["rounds"].columns_dict
    with Store(db_path):
        pass
    assert calls == [2]  # applied once


def test_failing_migration_rolls_back(db_path, monkeypatch):
    Store.create(db_path).close()

    def broken(db):
        db.execute("ALTER TABLE rounds ADD COLUMN notes TEXT")
        raise RuntimeError("boom")

    monkeypatch.setattr(store_base, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(store_base, "MIGRATIONS", {SCHEMA_VERSION: broken})
    with pytest.raises(RuntimeError):
        Store(db_path)
    monkeypatch.setattr(store_base, "MIGRATIONS", {})
    with pytest.raises(StoreError, match="no migration"):
        Store(db_path)
    con = raw(db_path)
    assert con.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)
    assert "notes" not in [r[1] for r in con.execute("PRAGMA table_info(rounds)")]
    con.close()


# -- round trips and idempotency -------------------------------------------------------------------


def test_tools(st):
    tid = st.upsert_tool(WEATHER, domain="weather", source="seed", tree_path="weather/now")
    assert tid == st.upsert_tool(WEATHER.model_copy(deep=True), domain="geo")  # same spec, same id
    assert st.get_tool(tid) == WEATHER
    assert st.counts()["tools"] == 1
    row = st.db["tools"].get(tid)
    assert row["domain"] == "geo" and row["name"] == "get_weather"
    ids = st.upsert_tools([WEATHER, TIME], domain="geo")
    assert ids[0] == tid and len(set(ids)) == 2
    records = st.tool_records()
    assert [r["name"] for r in records] == ["get_time", "get_weather"]
    assert [r["spec"] for r in records] == [TIME, WEATHER] and records[1]["id"] == tid
    assert st.tool_records(domain="nothing") == []
    assert len(st.tool_records(domain="geo")) == 2
    with pytest.raises(KeyError):
        st.get_tool("t_missing")


def test_dialogue_and_messages(st):
    msgs = [
        Message(role="user", content="weather?", agent="user"),
        Message(role="assistant", tool_calls=[ToolCall(name="get_weather", arguments={"city": "Oslo"})]),
        Message(role="tool", content='{"t": 3}', tool_call_id="c1", name="get_weather", agent="tool"),
    ]
    d = Dialogue(id="d1", plan={"goal": "x"}, tool_ids=["t_1"], messages=msgs[:1], thread_id="th")
    st.upsert_dialogue(d)
    st.add_messages("d1", msgs[1:], 1, model="m", latency_ms=12.5, prompt_tokens=3, completion_tokens=4)
    got = st.get_dialogue("d1")
    assert got == d.model_copy(update={"messages": msgs})
    assert st.messages("d1") == msgs
    row = st.db["messages"].get(("d1", 2))
    assert (row["model"], row["latency_ms"], row["prompt_tokens"]) == ("m", 12.5, 3)

    created = st.db["dialogues"].get("d1")["created_at"]
    st.upsert_dialogue(d.model_copy(update={"messages": [], "status": "running"}))
    st.add_messages("d1", [Message(role="user", content="edited")], 0)
    assert st.counts()["dialogues"] == 1 and st.counts()["messages"] == 3
    assert st.messages("d1")[0].content == "edited"
    assert st.db["dialogues"].get("d1")["created_at"] == created

    st.set_dialogue_status("d1", "failed", error="timeout")
    got = st.get_dialogue("d1")
    assert (got.status, got.error) == ("failed", "timeout")
    with pytest.raises(KeyError):
        st.set_dialogue_status("nope", "done")
    with pytest.raises(ValueError):
        st.set_dialogue_status("d1", "bogus")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        st.get_dialogue("nope")


def test_sample_round_trip_and_idempotent_upsert(st):
    s = make_sample(dialogue_id="d9", round_added=2)
    st.upsert_sample(s)
    assert st.get_sample(s.id) == s
    created = st.db["samples"].get(s.id)["created_at"]
    newer = s.model_copy(update={"label": Label(text="no call"), "active": False, "label_version": 3})
    st.upsert_sample(newer)
    assert st.counts()["samples"] == 1
    assert st.get_sample(s.id) == newer
    assert st.db["samples"].get(s.id)["created_at"] == created


def test_label_bump_and_active(st):
    s = make_sample()
    st.upsert_sample(s)
    st.set_sample_label(s.id, Label(text="ask for the city"), reason="round 1: LABEL_WRONG")
    st.set_sample_label(s.id, Label(calls=[ToolCall(name="get_time")]))
    got = st.get_sample(s.id)
    assert got.label_version == 3 and got.label.calls[0].name == "get_time"
    history = st.label_history(s.id)  # every earlier label, with its version and the reason it went
    assert [(h["label_version"], h["reason"]) for h in history] == [(1, "round 1: LABEL_WRONG"), (2, "")]
    assert history[0]["label"] == s.label and history[1]["label"] == Label(text="ask for the city")
    st.set_sample_active(s.id, False)
    assert st.get_sample(s.id).active is False
    with pytest.raises(KeyError):
        st.set_sample_label("s_missing", Label(text="x"))
    assert st.counts()["label_history"] == 2  # the failed call wrote nothing


def test_iter_samples_filters_and_pages(st):
    seeds = [make_sample(f"q{i}", round_added=i % 2) for i in range(7)]
    child = make_sample("q0", parent_id=seeds[0].id, origin="corrected", round_added=1, active=False)
    st.upsert_samples(seeds + [child])
    assert len(list(st.iter_samples(page=2))) == 8
    assert [s.id for s in st.iter_samples(page=3)] == sorted(s.id for s in seeds + [child])
    assert {s.id for s in st.iter_samples(origin="corrected")} == {child.id}
    assert len(list(st.iter_samples(round_added=1, active=True))) == 3
    assert len(list(st.iter_samples(active=False))) == 1
    assert list(st.iter_samples(origin="expanded")) == []


def test_batch_upsert_rolls_back(db_path, st):
    good = make_sample("good")
    bad = make_sample("bad")
    bad.label.calls[0].arguments["x"] = object()  # cannot be serialised
    with pytest.raises((TypeError, ValueError)):  # json or pydantic serialisation error
        st.upsert_samples([good, bad])
    with pytest.raises((TypeError, ValueError)):  # json or pydantic serialisation error
        st.upsert_tools([WEATHER, ToolSpec.model_construct(name="bad", parameters={"x": object()})])
    with pytest.raises(RuntimeError), st.transaction():
        st.upsert_sample(good)
        st.log_event("info", "x", "y")
        raise RuntimeError("killed")
    assert st.counts()["samples"] == 0 and st.counts()["tools"] == 0 and st.counts()["events"] == 0
    con = raw(db_path)
    assert con.execute("SELECT count(*) FROM samples").fetchone()[0] == 0
    con.close()
    st.upsert_samples([good])  # the connection is still usable
    assert st.counts()["samples"] == 1


def test_nested_transaction_savepoint(st):
    with st.transaction():
        st.log_event("info", "a", "kept")
        with pytest.raises(RuntimeError), st.transaction():
            st.log_event("info", "b", "dropped")
            raise RuntimeError
    assert [e["message"] for e in st.events()] == ["kept"]


def test_probes(st):
    a, b = make_sample("a"), make_sample("b")
    st.upsert_samples([a, b])
    pa = Probe(sample_id=a.id, round=1, prediction=[ToolCall(name="get_time")], raw="<x>", correct=False,
               ppl=3.5, category="failed")
    pb = Probe(sample_id=b.id, round=1, prediction=None, raw="", correct=True, category="mastered")
    st.upsert_probe(pa)
    st.upsert_probe(pb)
    st.upsert_probe(pb.model_copy(update={"category": "boundary", "ppl": 1.0}))
    assert st.counts()["probes"] == 2
    assert st.probes(1) == sorted([pa, pb.model_copy(update={"category": "boundary", "ppl": 1.0})],
                                  key=lambda p: p.sample_id)
    assert st.probes(1, category="failed") == [pa]
    assert st.probes(2) == []
    assert st.probe_counts_by_category(1) == {"failed": 1, "boundary": 1}
    with pytest.raises(sqlite3.IntegrityError):  # probes reference samples
        st.upsert_probe(Probe(sample_id="s_ghost", round=1, correct=True))


def test_verdicts(st):
    a, b = make_sample("a"), make_sample("b")
    st.upsert_samples([a, b])
    va = Verdict(sample_id=a.id, round=1, verdict="LABEL_WRONG", corrected_label=Label(text="none"),
                 rationale="r", judge_model="j")
    vb = Verdict(sample_id=b.id, round=1, verdict="PRED_WRONG")
    st.upsert_verdict(va)
    created = st.db["verdicts"].get((a.id, 1))["created_at"]
    st.upsert_verdict(va.model_copy(update={"rationale": "r2"}))
    st.upsert_verdict(vb)
    got = {v.sample_id: v for v in st.verdicts(1)}
    # A verdict is about the label the sample has when it is stored (version 1 here).
    assert got[a.id] == va.model_copy(update={"rationale": "r2", "label_version": 1})
    assert got[b.id] == vb.model_copy(update={"label_version": 1})
    assert st.db["verdicts"].get((a.id, 1))["created_at"] == created
    assert st.verdict_counts(1) == {"LABEL_WRONG": 1, "PRED_WRONG": 1}
    st.set_human_override(b.id, 1, "LABEL_WRONG")
    assert st.verdict_counts(1) == {"LABEL_WRONG": 2}
    assert {v.sample_id: v for v in st.verdicts(1)}[b.id].human_override == "LABEL_WRONG"
    st.set_human_override(b.id, 1, None)
    assert st.verdict_counts(1) == {"LABEL_WRONG": 1, "PRED_WRONG": 1}
    with pytest.raises(StoreError, match=f"round 7 has no verdict on sample {b.id}"):
        st.set_human_override(b.id, 7, "BOTH_OK")


def test_a_batch_of_overrides_is_all_or_nothing(st):
    a, b = make_sample("a"), make_sample("b")
    st.upsert_samples([a, b])
    for s in (a, b):
        st.upsert_verdict(Verdict(sample_id=s.id, round=1, verdict="PRED_WRONG"))
    with pytest.raises(StoreError, match="unknown verdict 'PRED_WRNG'"):
        st.set_human_overrides(1, {a.id: "BOTH_OK", b.id: "PRED_WRNG"})
    with pytest.raises(StoreError, match="round 1 has no verdict on sample s_nope"):
        st.set_human_overrides(1, {a.id: "BOTH_OK", "s_nope": "BOTH_OK"})
    assert [v.human_override for v in st.verdicts(1)] == [None, None]  # the good one was not written either
    st.set_human_overrides(1, {a.id: "BOTH_OK", b.id: "LABEL_WRONG"})
    assert {v.sample_id: v.human_override for v in st.verdicts(1)} == {a.id: "BOTH_OK", b.id: "LABEL_WRONG"}


def test_a_persons_decision_is_found_for_its_label_version_only(st):
    a = make_sample("a")
    st.upsert_sample(a)
    st.upsert_verdict(Verdict(sample_id=a.id, round=1, verdict="LABEL_WRONG"))
    assert st.person_decision(a.id, 1, 2) is None  # the judge's verdict is no person's decision
    st.set_human_override(a.id, 1, "PRED_WRONG")
    found = st.person_decision(a.id, 1, 2)
    assert (found.round, found.human_override, found.label_version) == (1, "PRED_WRONG", 1)
    assert st.person_decision(a.id, 1, 1) is None  # only earlier rounds count
    st.set_sample_label(a.id, Label(text="Which city?"), reason="round 2: LABEL_WRONG")
    assert st.person_decision(a.id, 2, 3) is None  # a new label: nobody decided on it


def test_version_6_verdicts_get_the_label_version_they_judged(db_path):
    with Store.create(db_path) as s:
        a, b = make_sample("a"), make_sample("b")
        s.upsert_samples([a, b])
        for n in (1, 2, 3):
            s.upsert_verdict(Verdict(sample_id=a.id, round=n, verdict="LABEL_WRONG"))
        s.upsert_verdict(Verdict(sample_id=b.id, round=2, verdict="PRED_WRONG"))
        s.set_sample_label(a.id, Label(text="v2"), reason="round 1: LABEL_WRONG")  # v1 -> v2 in round 1
        s.set_sample_label(a.id, Label(text="v3"), reason="round 2: BOTH_OK")  # v2 -> v3 in round 2
    con = raw(db_path)  # back to version 6: no label_version column
    con.execute("ALTER TABLE verdicts DROP COLUMN label_version")
    con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with Store(db_path) as s:
        assert s.schema_version() == 7
        assert [v.label_version for v in s.verdicts_for_sample(a.id)] == [1, 2, 3]
        assert [v.label_version for v in s.verdicts_for_sample(b.id)] == [1]


def test_rounds(st):
    assert st.get_round(0) is None and st.rounds() == []
    r1 = Round(n=1, status="running", stage="train", started_at="2024-01-01T00:00:00+00:00",
               data_ids=["s_1"], metrics={"loss": 0.5})
    st.upsert_round(Round(n=0, status="done"))
    st.upsert_round(r1)
    r1b = r1.model_copy(update={"status": "done", "adapter_path": "adapters/1", "metrics": RoundMetrics(acc=1)})
    st.upsert_round(r1b)
    assert st.get_round(1) == r1b
    assert [r.n for r in st.rounds()] == [0, 1]
    assert st.counts()["rounds"] == 2


def test_a_stored_round_row_saved_again_keeps_every_key(st):
    """A row's metrics as the loop writes them, nulls and keys the model does not name included:
    read into RoundMetrics and saved again, the column is the same JSON."""
    metrics = {"composition": {"fresh_seed": 8, "corrected": 0},
               "probe": {"mastered": 3, "boundary": 2, "failed": 3, "boundary_cut": None},
               "expansion": {"kept": 1, "rejected": 2},
               "eval": {"heldout": None, "heldout_run": "eval_1", "bfcl": {"simple": 0.5, "multiple": None, "all": 0.5},
                        "bfcl_run": "bfcl_1", "acebench": {"normal": None, "special": 0.5, "all": 0.5},
                        "acebench_run": "ace_1"},
               "sft": {"steps": 4, "finished": "2026-01-02T03:56:00.000+00:00"}, "grpo": {"steps": 9, "device": "cpu"},
               "stage_seconds": {"train": 30.0}, "stage_started": "2026-01-02T03:40:00.000+00:00",
               "loss": 0.5, "notes": {"kept": None}}
    st.upsert_round(Round(n=1))
    st.db.execute("UPDATE rounds SET metrics_json = ? WHERE n = 1", [canonical_json(metrics)])
    info = st.get_round(1)
    assert info.metrics.eval.bfcl["simple"] == 0.5 and info.metrics.probe.boundary_cut is None
    assert info.metrics.sft["steps"] == 4 and info.metrics.model_extra == {"loss": 0.5, "notes": {"kept": None}}
    st.upsert_round(info)
    assert st.db.execute("SELECT metrics_json FROM rounds WHERE n = 1").fetchone()[0] == canonical_json(metrics)
    assert Round(n=2).metrics.model_dump() == {}  # a new round writes no key


def test_events(st):
    ids = [st.log_event("info", "train", f"m{i}") for i in range(5)]
    evs = st.events()
    assert [e["id"] for e in evs] == ids
    assert set(evs[0]) == {"id", "ts", "level", "stage", "message"}
    assert evs[0]["ts"].endswith("+00:00")
    assert [e["message"] for e in st.events(limit=2)] == ["m3", "m4"]
    assert [e["message"] for e in st.events(since_id=ids[2])] == ["m3", "m4"]


def test_counts_queries(st):
    assert st.counts() == {t: 0 for t in TABLES}
    st.upsert_samples([
        make_sample("a"), make_sample("b", round_added=1),
        make_sample("c", origin="expanded", round_added=1),
        make_sample("d", origin="corrected", round_added=2, active=False),
    ])
    assert st.sample_counts_by_origin() == {"seed": 2, "expanded": 1}
    assert st.sample_counts_by_origin(active_only=False) == {"seed": 2, "expanded": 1, "corrected": 1}
    assert st.sample_counts_by_round() == {0: 1, 1: 2}
    assert st.sample_counts_by_round(active_only=False) == {0: 1, 1: 2, 2: 1}
    for i, status in enumerate(["done", "done", "failed"]):
        st.upsert_dialogue(Dialogue(id=f"d{i}", status=status))
    assert st.dialogue_counts_by_status() == {"done": 2, "failed": 1}
    assert st.counts()["samples"] == 4 and st.counts()["dialogues"] == 3


# -- concurrency -----------------------------------------------------------------------------------


def test_two_stores_write_concurrently(db_path):
    Store.create(db_path).close()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(tag: str) -> None:
        try:
            with Store(db_path) as s:
                barrier.wait()
                for i in range(40):
                    s.upsert_samples([make_sample(f"{tag}{i}"), make_sample(f"{tag}{i}x")])
                    s.log_event("info", tag, str(i))
                    s.counts()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    with Store(db_path) as s:
        assert s.counts()["samples"] == 160 and s.counts()["events"] == 80


# -- SQLite errors ---------------------------------------------------------------------------------


def test_a_busy_database_is_one_store_error_line_naming_the_file(st, db_path):
    st.db.conn.execute("PRAGMA busy_timeout=0")  # fail at once instead of after ten seconds
    other = raw(db_path)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError) as caught:
            st.log_event("info", "test", "waits for the other writer")
    finally:
        other.rollback()
        other.close()
    line = str(caught.value)
    assert line.startswith(f"{db_path} is busy (database is locked)") and "\n" not in line
    assert st.log_event("info", "test", "the lock is free again") == 1  # the failed write left nothing behind


def test_a_read_only_file_is_one_store_error_line_at_the_first_write(db_path, monkeypatch):
    Store.create(db_path).close()
    real_connect = sqlite3.connect
    monkeypatch.setattr(store_base.sqlite3, "connect", lambda path, **kw: real_connect(
        f"{db_path.as_uri()}?mode=ro", uri=True, **kw))
    with Store(db_path) as s:
        assert s.counts()["samples"] == 0  # reading works
        with pytest.raises(StoreError) as caught:
            s.upsert_samples([make_sample()])
    assert str(caught.value).startswith(f"{db_path} is read-only (attempt to write a readonly database)")


# -- evaluation ------------------------------------------------------------------------------------


def _result(entry_id: str, category: str, passed: bool, error_type: str | None = None) -> dict:
    return {"entry_id": entry_id, "category": category, "output": "x", "decoded": [{"f": {"a": (1, 2)}}],
            "passed": passed, "error_type": error_type, "error": None, "latency_ms": 5.0,
            "prompt_tokens": 10, "completion_tokens": 2}


def test_eval_results_and_scores(st):
    st.upsert_eval_run("r1", suite="bfcl", model="m", adapter=None, round=None, settings={"max_tokens": 8})
    st.upsert_eval_run("r2", suite="bfcl", model="m", adapter="round-1", round=1, settings={})
    st.add_eval_results("r1", [_result("simple_0", "simple", True), _result("simple_1", "simple", False),
                               _result("multiple_0", "multiple", False, "inference_error:rejected")])
    st.add_eval_results("r1", [_result("simple_1", "simple", True)])  # scored again: replaces the row
    assert st.scored_entry_ids("r1") == {"simple_0", "simple_1", "multiple_0"}
    scores = st.update_eval_scores("r1")
    assert scores == {"multiple": {"total": 1, "passed": 0, "accuracy": 0.0, "errors": 1},
                      "simple": {"total": 2, "passed": 2, "accuracy": 1.0, "errors": 0}}
    rows = st.eval_results("r1", "simple")
    assert [r["entry_id"] for r in rows] == ["simple_0", "simple_1"] and rows[0]["decoded"] == [{"f": {"a": [1, 2]}}]
    assert [r["entry_id"] for r in st.eval_results("r1", failed_only=True)] == ["multiple_0"]
    runs = st.eval_runs("bfcl")
    assert [r["id"] for r in runs] == ["r1", "r2"] and runs[0]["settings"] == {"max_tokens": 8}
    st.delete_eval_run("r1")  # cascades to results and scores
    assert st.eval_results("r1") == [] and st.eval_scores("r1") == {}


def test_train_steps_upsert_by_step(st):
    st.add_train_step(1, "grpo", 1, {"reward": 0.25, "loss": 0.1})
    st.add_train_step(1, "grpo", 2, {"reward": 0.5})
    st.add_train_step(1, "grpo", 1, {"reward": 0.3})  # a resumed run logs step 1 again: replaced
    st.add_train_step(1, "sft", 1, {"loss": 2.0})
    assert st.train_steps(1, "grpo") == [{"step": 1, "reward": 0.3}, {"step": 2, "reward": 0.5}]
    st.clear_train_steps(1, "grpo")
    assert st.train_steps(1, "grpo") == [] and len(st.train_steps(1, "sft")) == 1
