"""The seed stage against the scripted fake server: scenario plans, verification, samples, the
seed graph (self-consistency, retries, resumption), and the `seed` / `dialogues` commands.

Every role is an endpoint at FakeOpenAI, which answers each JSON-schema request with a valid
instance chosen from its prompt (also for strings under a `pattern`, such as the user message
that must contain the plan's values), so runs are fast and deterministic. Model quality is
exercised in tests/integration/test_seed.py.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import socket
import threading
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import SCENARIO_DESCRIPTIONS, SCENARIOS, ConfigError, SeedConfig, WorkspaceConfig, load_config
from looptool.schema import Action, Message, Plan, PlannedCall, PlanTurn, ToolCall, ToolSpec, complete_plan
from looptool.seed.graph import JUDGE_REJECTED, judge_rejection, reason_kind
from looptool.seed.runner import resolve_judge_check, run_seed
from looptool.seed.samples import turn_samples
from looptool.seed.scenarios import dialogue_id, draft_plan, is_heldout_index, scenario_sequence, tool_split
from looptool.seed.verify import NOT_LANGUAGE, language_problem, verify
from looptool.serving.server import ServingError
from looptool.store import Store
from looptool.tools_sim.validate import argument_errors
from tests.fakes import FakeOpenAI, chat_reply, instance_reply, prompt_of, regex_instance, schema_name
from tests.fakes import json_schema_responder as schema_responder

# -- tools ---------------------------------------------------------------------------------------

CITY = {"type": "string", "description": "City name."}
TOOLS = {
    "weather": [
        {"name": "get_weather", "description": "Current weather in a city.",
         "parameters": {"type": "object", "properties": {
             "city": CITY, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}},
        {"name": "get_forecast", "description": "Daily forecast for a city.",
         "parameters": {"type": "object", "properties": {
             "city": CITY, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "days"]}},
        {"name": "air_quality", "description": "Air quality index of a city.",
         "parameters": {"type": "object", "properties": {
             "city": CITY, "pollutants": {"type": "array", "items": {"type": "string", "enum": ["pm25", "pm10", "o3"]}}},
             "required": ["city"]}},
    ],
    "travel": [
        {"name": "search_flights", "description": "Find flights between two airports on a date.",
         "parameters": {"type": "object", "properties": {
             "origin": {"type": "string"}, "destination": {"type": "string"}, "date": {"type": "string", "format": "date"},
             "cabin": {"type": "string", "enum": ["economy", "business"]}},
             "required": ["origin", "destination", "date"]}},
        {"name": "book_hotel", "description": "Book a hotel room.",
         "parameters": {"type": "object", "properties": {
             "city": CITY, "nights": {"type": "integer", "minimum": 1, "maximum": 30},
             "guests": {"type": "integer", "minimum": 1, "maximum": 6}}, "required": ["city", "nights"]}},
        {"name": "list_attractions", "description": "Sights of a city in some categories.",
         "parameters": {"type": "object", "properties": {
             "city": CITY, "categories": {"type": "array", "items": {"type": "string"}},
             "limit": {"type": "integer", "minimum": 1, "maximum": 20}}, "required": ["city"]}},
    ],
    "finance": [
        {"name": "convert_currency", "description": "Convert an amount between currencies.",
         "parameters": {"type": "object", "properties": {
             "amount": {"type": "number", "minimum": 0}, "to_currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]}},
             "required": ["amount", "to_currency"]}},
        {"name": "stock_price", "description": "Latest price of some stock tickers.",
         "parameters": {"type": "object", "properties": {
             "tickers": {"type": "array", "items": {"type": "string"}, "minItems": 1},
             "exchange": {"type": "string", "enum": ["NYSE", "NASDAQ"]}}, "required": ["tickers"]}},
        {"name": "market_news", "description": "Market headlines, optionally on a topic.",
         "parameters": {"type": "object", "properties": {"topic": {"type": "string"}}}},
    ],
}  # fmt: skip
SPECS = {s["name"]: ToolSpec.model_validate(s) for specs in TOOLS.values() for s in specs}
HELDOUT_FRACTION = 0.25  # in the runs below: get_forecast, search_flights, list_attractions are held out
HELDOUT_TOOLS = {name for name in SPECS if tool_split(name, HELDOUT_FRACTION) == "heldout"}


def tool_records(tools: dict[str, list[dict]] = TOOLS) -> list[dict]:
    """What store.tool_records() returns for these tools (ordered by domain, then name)."""
    records = [
        {"id": f"t_{spec['name']}", "name": spec["name"], "domain": domain, "source": "test", "tree_path": "",
         "spec": ToolSpec.model_validate(spec)}
        for domain, specs in tools.items() for spec in specs
    ]  # fmt: skip
    return sorted(records, key=lambda r: (r["domain"], r["name"]))


# -- workspaces at the fake ----------------------------------------------------------------------


def make_workspace(
    root: Path, base_url: str, *, seed: str = "", serving: str = "", tools: bool = True, judge_check: str = "off"
) -> Path:
    """A workspace whose roles all point at `base_url`, with TOOLS in three domains. The judge's
    check is off unless asked for (the fake's verdicts would be random)."""
    ws = root / "ws"
    result = CliRunner().invoke(app, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    role = f'kind = "endpoint"\nbase_url = "{base_url}"\nmodel = "m"\n'
    (ws / "looptool.toml").write_text(
        f'name = "t"\n[serving]\n{serving}\n[seed]\nguidance = "grammar"\njudge_check = "{judge_check}"\n{seed}\n'
        + "".join(f"[{section}]\n{role}" for section in ("policy", "generator", "judge"))
    )
    if tools:
        with Store.open(ws / "looptool.db") as store:
            for domain, specs in TOOLS.items():
                store.upsert_tools([ToolSpec.model_validate(s) for s in specs], domain=domain, source="test")
    return ws


def seed_run(ws: Path, n: int, concurrency: int = 2):
    """run_seed in-process, seed 0."""
    return run_seed(ws, load_config(ws), n=n, concurrency=concurrency, seed=0, log=lambda *_: None)


def free_port() -> int:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AssistantVariants:
    """Answers like schema_responder, except that the assistant's self-consistency samples
    may disagree: the k-th distinct assistant prompt gets answer variant `patterns[k][nth]` for
    its nth request (variant 0 when the pattern is shorter), and equal variants give equal answers."""

    def __init__(self, patterns: list[list[int]]):
        self.patterns = patterns
        self.base = schema_responder()
        self.prompts: list[str] = []
        self.seen: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, path: str, body: dict) -> tuple[int, dict]:
        if schema_name(body) != "assistant":
            return self.base(path, body)
        prompt = prompt_of(body)
        with self.lock:
            if prompt not in self.prompts:
                self.prompts.append(prompt)
            k, nth = self.prompts.index(prompt), self.seen[prompt]
            self.seen[prompt] += 1
        pattern = self.patterns[k] if k < len(self.patterns) else []
        variant = pattern[nth] if nth < len(pattern) else 0
        return 200, instance_reply(body, f"{prompt}|{variant}")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """12 dialogues (every scenario twice) seeded through the fake; tests only read it."""
    fake = FakeOpenAI()
    fake.responder = schema_responder()
    ws = make_workspace(tmp_path_factory.mktemp("seeded"), fake.endpoint.base_url, seed=f"heldout_fraction = {HELDOUT_FRACTION}")
    report = seed_run(ws, 12, concurrency=4)
    yield ws, report, fake, len(fake.requests)
    fake.close()


@pytest.fixture(scope="module")
def fake_server():
    server = FakeOpenAI()
    yield server
    server.close()


@pytest.fixture
def fake(fake_server):
    """The module's fake server, reset (stopping a server takes half a second: one per module)."""
    fake_server.responder = None
    fake_server.replies.clear()
    fake_server.requests.clear()
    return fake_server


def copy_workspace(ws: Path, dest: Path) -> Path:
    shutil.copytree(ws, dest / "ws")
    return dest / "ws"


# -- scenarios -----------------------------------------------------------------------------------


def test_scenario_sequence_with_equal_weights_deals_every_type_in_each_block():
    seq = scenario_sequence({s: 1.0 for s in SCENARIOS}, 60)
    for block in range(10):
        assert sorted(seq[6 * block : 6 * block + 6]) == sorted(SCENARIOS), seq[6 * block : 6 * block + 6]


@pytest.mark.parametrize(
    "mix",
    [
        {"single": 3, "parallel": 1, "irrelevant": 0},
        {"single": 5, "parallel": 1, "multiple": 1, "sequential": 1, "missing_argument": 1, "irrelevant": 1},
        {"single": 1, "sequential": 2, "irrelevant": 0.5},
        {"missing_argument": 0.2, "parallel": 0.05, "multiple": 0.75},
    ],
)
def test_scenario_sequence_follows_the_mix_in_every_prefix(mix):
    total = sum(mix.values())
    n = 200
    seq = scenario_sequence(mix, n)
    assert scenario_sequence(mix, n // 2) == seq[: n // 2]  # a prefix of a longer run is the shorter run
    counts: Counter = Counter()
    for i, s in enumerate(seq, start=1):
        counts[s] += 1
        for t in SCENARIOS:
            assert abs(counts[t] - mix.get(t, 0) / total * i) < 1, (i, t, counts)
    for t in SCENARIOS:
        weight = mix.get(t, 0)
        if weight > 0:  # early: by the time its share adds up to one dialogue
            assert seq.index(t) < math.ceil(total / weight), (t, seq[:20])
        else:
            assert t not in seq


def test_is_heldout_index_spreads_held_out_dialogues_evenly():
    for fraction in (0.1, 0.25, 0.3, 0.5):
        held = [i for i in range(1000) if is_heldout_index(i, fraction)]
        assert len(held) == round(1000 * fraction)
        gaps = {b - a for a, b in zip(held, held[1:])}
        assert gaps <= {math.floor(1 / fraction), math.ceil(1 / fraction)}, (fraction, gaps)
        assert held[0] < math.ceil(1 / fraction)
    assert not any(is_heldout_index(i, 0.0) for i in range(1000))


def test_tool_split_is_a_stable_hash_of_the_name():
    # Pinned values: the split of a tool must not change between runs, machines or versions.
    assert {n: tool_split(n, 0.25) for n in ("get_weather", "get_forecast", "search_flights", "list_attractions")} == {
        "get_weather": "train", "get_forecast": "heldout", "search_flights": "heldout", "list_attractions": "heldout",
    }  # fmt: skip
    assert tool_split("get_forecast", 0.1) == "train" and tool_split("search_flights", 0.1) == "heldout"
    names = [f"tool_{i}" for i in range(2000)]
    for fraction in (0.1, 0.3):
        share = sum(tool_split(n, fraction) == "heldout" for n in names) / len(names)
        assert abs(share - fraction) < 0.04
    # A tool held out at some fraction stays held out at any larger one; none is held out at 0.
    assert all(tool_split(n, 0.3) == "heldout" for n in names if tool_split(n, 0.1) == "heldout")
    assert all(tool_split(n, 0.0) == "train" for n in names)


def test_draft_plan_is_deterministic_for_index_and_seed():
    records, config = tool_records(), SeedConfig()
    for i in range(24):
        first, specs = draft_plan(i, 7, config, records)
        again, specs_again = draft_plan(i, 7, config, records)
        assert first == again and specs == specs_again
        assert first.goal == "" and all(c.arguments == {} for c in first.calls())  # a skeleton
        assert first.tools == [s.name for s in specs]
    other_seed = [draft_plan(i, 8, config, records)[0] for i in range(24)]
    assert other_seed != [draft_plan(i, 7, config, records)[0] for i in range(24)]
    # The scenario is the index's place in the mix, whatever the seed.
    assert [p.scenario for p in other_seed] == scenario_sequence(config.scenario_mix, 24)


def test_draft_plan_shapes_each_scenario():
    records, config = tool_records(), SeedConfig(chit_chat_rate=0, heldout_fraction=0)  # every tool in one pool
    seen = set()
    for i in range(120):
        plan, specs = draft_plan(i, 0, config, records)
        seen.add(plan.scenario)
        assert len(set(plan.tools)) == len(plan.tools) and set(plan.tools) <= set(SPECS)
        assert all(c.tool in plan.tools for c in plan.calls())
        call_actions = [a for t in plan.turns for a in t.actions if a.kind == "call"]
        if plan.scenario == "single":
            assert len(plan.tools) == 1 and [len(a.calls) for a in call_actions] == [1]
        elif plan.scenario == "multiple":
            assert len(plan.tools) >= 3 and [len(a.calls) for a in call_actions] == [1]
        elif plan.scenario == "parallel":
            assert [len(a.calls) in (2, 3) for a in call_actions] == [True]
        elif plan.scenario == "sequential":
            assert len(plan.tools) >= 2 and [len(a.calls) for a in call_actions] == [1, 1]
            assert call_actions[0].calls[0].tool != call_actions[1].calls[0].tool
        elif plan.scenario == "irrelevant":
            assert [t.kind for t in plan.turns] == ["off_topic"] and plan.calls() == []
        assert config.min_tools <= len(plan.tools) <= config.max_tools or plan.scenario in ("single", "multiple")
    assert seen == set(SCENARIOS)


def test_chit_chat_rate_adds_one_chit_chat_turn_before_or_after():
    records = tool_records()
    never = [draft_plan(i, 0, SeedConfig(chit_chat_rate=0), records)[0] for i in range(30)]
    assert all("chit_chat" not in [t.kind for t in p.turns] for p in never)
    always = [draft_plan(i, 0, SeedConfig(chit_chat_rate=1), records)[0] for i in range(30)]
    positions = Counter()
    for plan in always:
        kinds = [t.kind for t in plan.turns]
        assert kinds.count("chit_chat") == 1
        assert kinds[0] == "chit_chat" or kinds[-1] == "chit_chat"
        positions["first" if kinds[0] == "chit_chat" else "last"] += 1
    assert positions["first"] and positions["last"]


@pytest.mark.parametrize("fraction", [0.1, HELDOUT_FRACTION, 0.5])
def test_held_out_dialogues_offer_only_held_out_tools_and_train_dialogues_only_train_tools(fraction):
    records = tool_records()
    heldout = {r["name"] for r in records if tool_split(r["name"], fraction) == "heldout"}
    assert heldout and heldout != set(SPECS)  # both pools have tools at these fractions
    splits = Counter()
    for i in range(200):
        plan, specs = draft_plan(i, 3, SeedConfig(heldout_fraction=fraction), records)
        splits[plan.split] += 1
        assert plan.split == ("heldout" if is_heldout_index(i, fraction) else "train"), i
        offered = {s.name for s in specs}
        assert offered <= heldout if plan.split == "heldout" else not offered & heldout, (i, plan.split, offered)
    assert splits["heldout"] == round(200 * fraction)


def test_when_every_tool_is_held_out_every_dialogue_is_a_held_out_one():
    records = [r for r in tool_records() if r["name"] in HELDOUT_TOOLS]
    config = SeedConfig(heldout_fraction=HELDOUT_FRACTION)
    for i in range(12):  # also the indexes that would be train dialogues
        plan, specs = draft_plan(i, 0, config, records)
        assert plan.split == "heldout" and {s.name for s in specs} <= HELDOUT_TOOLS


def test_missing_argument_withholds_a_required_parameter_of_the_called_tool():
    records = tool_records()
    plans = [p for i in range(240) if (p := draft_plan(i, 5, SeedConfig(), records)[0]).scenario == "missing_argument"]
    assert len(plans) == 40
    for plan in plans:
        task_i = next(i for i, t in enumerate(plan.turns) if t.kind == "task")
        task, follow_up = plan.turns[task_i], plan.turns[task_i + 1]
        assert follow_up.kind == "follow_up"
        assert len(task.withhold) == 1 and [a.kind for a in task.actions] == ["ask"]
        assert task.actions[0].missing == task.withhold
        assert [a.kind for a in follow_up.actions] == ["call", "reply"]
        (call,) = follow_up.actions[0].calls
        assert call.tool in plan.tools
        assert task.withhold[0] in SPECS[call.tool].parameters["required"]


def test_complete_plan_fills_arguments_in_order_and_mentions_what_the_user_says():
    skeleton = Plan(scenario="sequential", split="train", tools=["get_weather", "get_forecast"], persona="p", turns=[
        PlanTurn(kind="chit_chat", actions=[Action(kind="reply")]),
        PlanTurn(kind="task", actions=[Action(kind="call", calls=[PlannedCall(tool="get_weather")]),
                                       Action(kind="call", calls=[PlannedCall(tool="get_forecast")]), Action(kind="reply")]),
    ])  # fmt: skip
    args = [{"city": "Paris"}, {"city": "Lyon", "days": 2}]
    plan = complete_plan(skeleton, "Plan a weekend trip.", args)
    assert plan.goal == "Plan a weekend trip."
    assert [(c.tool, c.arguments) for c in plan.calls()] == [("get_weather", args[0]), ("get_forecast", args[1])]
    assert plan.turns[1].mention == args and plan.turns[0].mention == []
    assert skeleton.goal == "" and all(c.arguments == {} for c in skeleton.calls())  # the skeleton is left alone
    with pytest.raises(ValueError):
        complete_plan(skeleton, "Plan a weekend trip.", args[:1])  # one argument set per planned call


def test_complete_plan_keeps_withheld_values_for_the_follow_up():
    skeleton = Plan(scenario="missing_argument", split="train", tools=["get_forecast"], persona="p", turns=[
        PlanTurn(kind="task", withhold=["days"], actions=[Action(kind="ask", missing=["days"])]),
        PlanTurn(kind="follow_up", actions=[Action(kind="call", calls=[PlannedCall(tool="get_forecast")]),
                                            Action(kind="reply")]),
    ])  # fmt: skip
    plan = complete_plan(skeleton, "Know the weather ahead.", [{"city": "Oslo", "days": 4}])
    assert plan.turns[0].mention == [{"city": "Oslo"}]
    assert plan.turns[1].mention == [{"days": 4}]
    assert plan.calls()[0].arguments == {"city": "Oslo", "days": 4}


# -- verify --------------------------------------------------------------------------------------

W = ("get_weather", {"city": "Paris"})
F = ("get_forecast", {"city": "Paris", "days": 3})
Q = ("air_quality", {"city": "Oslo"})


def user(text: str = "Hello there") -> Message:
    return Message(role="user", content=text, agent="user")


def calls(*items: tuple[str, dict]) -> Message:
    return Message(role="assistant", agent="assistant", tool_calls=[ToolCall(name=n, arguments=a) for n, a in items])


def text(content: str = "Here you are.") -> Message:
    return Message(role="assistant", agent="assistant", content=content)


def result(name: str, content: str = '{"ok": true}') -> Message:
    return Message(role="tool", agent="tool", name=name, content=content)


def rows(*messages: Message, masked: tuple[int, ...] = ()) -> list[dict]:
    """Message rows in the shape of store.message_rows."""
    return [{"idx": i, "message": m, "masked": i in masked, "model": "m", "latency_ms": 1.0,
             "prompt_tokens": 1, "completion_tokens": 1} for i, m in enumerate(messages)]  # fmt: skip


def call_action(*items: tuple[str, dict]) -> Action:
    return Action(kind="call", calls=[PlannedCall(tool=n, arguments=a) for n, a in items])


REPLY = Action(kind="reply")


def plan(scenario: str, turns: list[PlanTurn], tools: tuple[str, ...] = ("get_weather",), split: str = "train") -> Plan:
    return Plan(scenario=scenario, split=split, tools=list(tools), persona="p", goal="a goal", turns=turns)


def task(*actions: Action) -> PlanTurn:
    return PlanTurn(kind="task", actions=list(actions))


THREE = ("get_weather", "get_forecast", "air_quality")
SINGLE = plan("single", [task(call_action(W), REPLY)])
MULTIPLE = plan("multiple", [task(call_action(W), REPLY)], THREE)
PARALLEL = plan("parallel", [task(call_action(W, F), REPLY)], THREE)
SEQUENTIAL = plan("sequential", [task(call_action(W), call_action(F), REPLY)], THREE)
MISSING = plan("missing_argument", [
    PlanTurn(kind="task", withhold=["days"], actions=[Action(kind="ask", missing=["days"])]),
    PlanTurn(kind="follow_up", actions=[call_action(F), REPLY]),
], ("get_forecast", "get_weather"))  # fmt: skip
IRRELEVANT = plan("irrelevant", [PlanTurn(kind="off_topic", actions=[REPLY])])
CHAT_FIRST = plan("single", [PlanTurn(kind="chit_chat", actions=[REPLY]), task(call_action(W), REPLY)])
CHAT_LAST = plan("single", [task(call_action(W), REPLY), PlanTurn(kind="chit_chat", actions=[REPLY])])

VERIFY_CASES = {
    # scenario that happened -> no reason
    "single": (SINGLE, [user(), calls(W), result("get_weather"), text()], []),
    "multiple": (MULTIPLE, [user(), calls(W), result("get_weather"), text()], []),
    "parallel": (PARALLEL, [user(), calls(W, F), result("get_weather"), result("get_forecast"), text()], []),
    "sequential": (SEQUENTIAL, [user(), calls(W), result("get_weather"), calls(F), result("get_forecast"), text()], []),
    "missing_argument": (MISSING, [user(), text("For how many days?"), user("Three."), calls(F), result("get_forecast"),
                                   text()], []),
    "irrelevant": (IRRELEVANT, [user(), text("I cannot do that.")], []),
    "chit-chat then single": (CHAT_FIRST, [user(), text(), user(), calls(W), result("get_weather"), text()], []),
    # what did not happen -> its reason
    "irrelevant with a call": (IRRELEVANT, [user(), calls(W), result("get_weather"), text()],
                               ["irrelevant: the assistant called a tool"]),
    "parallel without a multi-call turn": (PARALLEL, [user(), calls(W), result("get_weather"), calls(F),
                                                      result("get_forecast"), text()],
                                           ["parallel: no turn made two or more calls"]),
    "sequential without a call after a result": (SEQUENTIAL, [user(), calls(W, F), result("get_weather"),
                                                              result("get_forecast"), text()],
                                                 ["sequential: no call followed a tool result"]),
    "missing_argument answered by an immediate call": (MISSING, [user(), calls(F), result("get_forecast"), text(),
                                                                 user("Three."), text()],
                                                       ["missing_argument: the assistant did not ask for the missing value"]),
    "missing_argument whose later call lacks the value": (MISSING, [user(), text("How many days?"), user("Three."),
                                                                    calls(("get_forecast", {"city": "Paris"})),
                                                                    result("get_forecast"), text()],
                                                          ["call arguments do not fit the schema",
                                                           "missing_argument: no later call used the value the user gave"]),
    "single without a call": (SINGLE, [user(), text()], ["single: no call was made"]),
    "single with two calls": (SINGLE, [user(), calls(W, W), result("get_weather"), result("get_weather"), text()],
                              ["single: the first call turn has 2 calls, not 1"]),
    "invalid arguments": (SINGLE, [user(), calls(("get_weather", {"city": "Paris", "unit": "kelvin"})),
                                   result("get_weather"), text()], ["call arguments do not fit the schema"]),
    "unknown argument": (SINGLE, [user(), calls(("get_weather", {"city": "Paris", "when": "now"})),
                                  result("get_weather"), text()], ["call arguments do not fit the schema"]),
    "a tool not offered": (SINGLE, [user(), calls(F), result("get_forecast"), text()],
                           ["call to a tool the dialogue does not offer"]),
    "a call without result": (SINGLE, [user(), calls(W)], ["a call got no tool result"]),
    "a non-JSON tool result": (SINGLE, [user(), calls(W), result("get_weather", "sunny, 20 degrees"), text()],
                               ["tool result is not JSON"]),
    "chit-chat answered with a call": (CHAT_FIRST, [user(), calls(W), result("get_weather"), text(), user(), calls(W),
                                                    result("get_weather"), text()],
                                       ["chit-chat: answered with a call, or not at all"]),
    "plan not finished": (CHAT_LAST, [user(), calls(W), result("get_weather"), text()],
                          ["chit-chat: answered with a call, or not at all", "the plan was not finished (turn budget)"]),
    "a reply that is not language": (IRRELEVANT, [user(), text("f0-o3S7JQW-zZJL8EzbNqZJ-…")],
                                     [f"{NOT_LANGUAGE} (m1): 1 of its 1 tokens are code-like, not words "
                                      "(e.g. 'f0-o3S7JQW-zZJL8EzbNqZJ')"]),
    "a final reply that is not language": (SINGLE, [user(), calls(W), result("get_weather"), text("  ")],
                                           [f"{NOT_LANGUAGE} (m3): the reply is empty"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(VERIFY_CASES))
def test_verify(case):
    the_plan, messages, reasons = VERIFY_CASES[case]
    tools = [SPECS[name] for name in the_plan.tools]
    assert verify(the_plan, tools, rows(*messages)) == reasons


JUNK_REPLIES = ["f0-o3S7JQW-zZJL8EzbNqZJ-…", "f0 o3S7JQW zZJL8EzbNqZJ", "zZJLEzbNqZJqWx", "", "   ", "...", "42",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "x9 and q7R0"]
LANGUAGE_REPLIES = ["Sure.", "Which city?", "No.", "ok", "For how many people?", "It is 3 degrees and snowing in Oslo.",
                    "Your booking is f0-o3S7JQW.", "Booked for 19:30, $20 deposit, ref ABX-2291-QQ.", "iPhone",
                    "Quelle ville ?", "Für wie viele Personen?", "Какой город?", "哪个城市？", "明天下午3点在北京见",
                    "我可以创建一个名为DevelopmentEnv的workspace吗？", "こんにちは、どの都市ですか？", "مرحبا، أي مدينة؟",
                    "ขอบคุณครับ", "OK 👍", "See https://example.com/menu for the menu."]


@pytest.mark.parametrize("reply", JUNK_REPLIES)
def test_a_reply_that_is_not_language_is_rejected_by_rule(reply):
    assert language_problem(reply) is not None


@pytest.mark.parametrize("reply", LANGUAGE_REPLIES)
def test_short_and_non_english_replies_are_language(reply):
    assert language_problem(reply) is None


def test_a_reply_that_is_not_language_is_counted_by_kind():
    reason = verify(IRRELEVANT, [SPECS["get_weather"]], rows(user(), text("o3S7JQW")))[0]
    assert reason.startswith(NOT_LANGUAGE) and reason_kind(reason) == NOT_LANGUAGE
    # a masked turn yields no sample and no context: it is not checked
    assert verify(SINGLE, [SPECS["get_weather"]], rows(user(), calls(W), result("get_weather"), text("o3S7JQW"),
                                                      masked=(3,))) == []


def test_verify_rejects_a_dialogue_whose_every_assistant_turn_is_masked():
    messages = [user(), calls(W), result("get_weather"), text()]
    tools = [SPECS["get_weather"]]
    assert verify(SINGLE, tools, rows(*messages, masked=(1,))) == []  # one masked turn is fine
    assert verify(SINGLE, tools, rows(*messages, masked=(1, 3))) == [
        "every assistant turn was masked (no self-consistent answer)"
    ]


# -- samples -------------------------------------------------------------------------------------


def count_messages(chat: list[dict]) -> int:
    """A token counter for which every message costs one token."""
    return len(chat)


def make_samples(the_plan: Plan, messages: list[Message], *, masked=(), budget=10_000, counter=count_messages, **kw):
    tools = [SPECS[name] for name in the_plan.tools]
    by_turn, skipped = turn_samples("d_1", the_plan, tools, rows(*messages, masked=masked), budget=budget,
                                    count_tokens=counter, **kw)  # fmt: skip
    return list(by_turn.values()), skipped


WEATHER_DIALOGUE = [user("Weather in Paris?"), calls(W), result("get_weather", '{"temp": 20}'), text("It is 20 degrees.")]


def test_samples_label_calls_and_text_with_the_system_prompt_first():
    the_plan = plan("single", [task(call_action(W), REPLY)], ("get_weather",), split="heldout")
    samples, skipped = make_samples(the_plan, WEATHER_DIALOGUE)
    assert skipped == Counter()
    assert [s.label.calls for s in samples] == [[ToolCall(name="get_weather", arguments={"city": "Paris"})], []]
    assert samples[1].label.text == "It is 20 degrees."
    for s, n_context in zip(samples, (1, 3)):
        system = s.messages[0]
        assert system.role == "system" and "<tool_call>" in system.content
        assert '"name":"get_weather"' in system.content  # the tools, as the policy sees them
        assert s.messages[1:] == WEATHER_DIALOGUE[:n_context]
        assert (s.dialogue_id, s.origin, s.round_added, s.split, s.scenario) == ("d_1", "seed", 0, "heldout", "single")
        assert s.tools == [SPECS["get_weather"]]
    assert len({s.id for s in samples}) == 2


def test_final_replies_after_tool_results_can_be_left_out():
    samples, _ = make_samples(SINGLE, WEATHER_DIALOGUE, final_replies=False)
    assert [s.label.is_no_call for s in samples] == [False]
    # A text that answers a user directly is still a sample.
    samples, _ = make_samples(CHAT_FIRST, [user(), text("Hi!"), *WEATHER_DIALOGUE], final_replies=False)
    assert [s.label.text for s in samples] == ["Hi!", None]


def test_masked_turns_and_calls_with_error_results_yield_no_sample():
    samples, skipped = make_samples(SINGLE, WEATHER_DIALOGUE, masked=(1,))
    assert [s.label.text for s in samples] == ["It is 20 degrees."]
    assert skipped == {"masked (no self-consistent answer)": 1}
    error = result("get_weather", json.dumps({"error": {"type": "invalid_arguments", "details": []}}))
    samples, skipped = make_samples(SINGLE, [user(), calls(W), error, text("Sorry, that failed.")])
    assert [s.label.text for s in samples] == ["Sorry, that failed."]
    assert skipped == {"a tool result is an error": 1}
    samples, skipped = make_samples(SINGLE, [user(), text("Let me think.")])  # text where a call was planned
    assert samples == [] and skipped == {"text where a call was planned": 1}


def test_contexts_over_the_budget_drop_the_oldest_user_turns_or_are_skipped():
    messages = [user("Hi!"), text("Hello!"), *WEATHER_DIALOGUE]  # 6 messages, with the system prompt 7
    samples, skipped = make_samples(CHAT_FIRST, messages, budget=3)
    # "Hello!" fits whole (system + 1); the call drops the chit-chat exchange (system + 1);
    # the final reply needs system + 3 even trimmed: over the budget.
    assert [s.messages[1:] for s in samples] == [messages[:1], messages[2:3]]
    assert skipped == {"context over the token budget": 1}
    samples, skipped = make_samples(CHAT_FIRST, messages, budget=4)
    assert [s.messages[1:] for s in samples] == [messages[:1], messages[:3], messages[2:5]]
    assert skipped == Counter()


# -- a seed run through the fake -----------------------------------------------------------------


@pytest.mark.slow
def test_a_run_verifies_every_scenario_and_stores_samples_and_traces(seeded):
    ws, report, _, n_requests = seeded
    assert (report.n, report.already, report.done, report.dropped, report.in_flight) == (12, 0, 12, 0, 0)
    with Store.open(ws / "looptool.db") as store:
        dialogues = store.dialogue_rows()
        assert {r["id"] for r in dialogues} == {dialogue_id(0, i) for i in range(12)}
        assert {r["status"] for r in dialogues} == {"done"}, [r["error"] for r in dialogues]
        assert {r["scenario"] for r in dialogues} == set(SCENARIOS)
        heldout = {r["id"] for r in dialogues if r["split"] == "heldout"}
        assert heldout == {dialogue_id(0, i) for i in (3, 7, 11)}  # every 4th at heldout_fraction 0.25
        n_traces = 0
        samples = list(store.iter_samples())
        assert samples and {s.dialogue_id for s in samples} == {r["id"] for r in dialogues}
        for r in dialogues:
            d = store.get_dialogue(r["id"], with_messages=False)
            the_plan = Plan.model_validate(d.plan)
            tools = [store.get_tool(t) for t in d.tool_ids]
            assert [t.name for t in tools] == the_plan.tools and the_plan.goal
            message_rows = store.message_rows(r["id"])
            assert [m["idx"] for m in message_rows] == list(range(len(message_rows)))
            assert not any(m["masked"] for m in message_rows)  # the fake's samples always agree
            assert verify(the_plan, tools, message_rows) == []
            # One trace per agent call: the plan, each user turn, two agreeing assistant samples of a
            # call turn (one of a text turn: the grammar admits only text there, and texts always
            # agree), each tool result; nothing else.
            expected = {"plan.a0"}
            for m in message_rows:
                role, idx = m["message"].role, m["idx"]
                drawn = (0, 1) if m["message"].tool_calls else (0,)
                expected |= {"user": {f"m{idx}.user.a0"}, "tool": {f"m{idx}.tool.a0"},
                             "assistant": {f"m{idx}.assistant.s{k}.a0" for k in drawn}}[role]  # fmt: skip
            traces = store.traces(r["id"])
            assert {t["call_key"] for t in traces} == expected and len(traces) == len(expected)
            n_traces += len(traces)
            for t in traces:
                agent = "planner" if t["call_key"] == "plan.a0" else t["call_key"].split(".")[1]
                assert (t["agent"], t["status"], t["error"], t["model"]) == (agent, "ok", None, "m")
                assert t["raw"] is not None and t["parsed"] is not None
            by_agent = Counter(t["agent"] for t in traces)
            assert by_agent["planner"] == 1 and by_agent["user"] >= 1 and by_agent["assistant"] >= 1
            if the_plan.scenario != "irrelevant":
                assert by_agent["tool"] >= 1
            for s in store.iter_samples(dialogue_id=r["id"]):
                assert (s.split, s.scenario) == (the_plan.split, the_plan.scenario)
                assert [t.name for t in s.tools] == the_plan.tools
        for s in samples:
            assert s.messages[0].role == "system" and "<tool_call>" in s.messages[0].content
            by_name = {t.name: t for t in s.tools}
            for call in s.label.calls:
                assert argument_errors(by_name[call.name], call) == []
            names = {t.name for t in s.tools} | {c.name for c in s.label.calls}
            names |= {c.name for m in s.messages for c in m.tool_calls} | {m.name for m in s.messages if m.name}
            text_of_sample = " ".join(m.content or "" for m in s.messages)
            mentioned = {n for n in SPECS if n in text_of_sample}
            if s.split == "heldout":
                assert names | mentioned <= HELDOUT_TOOLS, (s.id, names, mentioned)
            else:
                assert not (names | mentioned) & HELDOUT_TOOLS, (s.id, names, mentioned)
        assert {s.split for s in samples} == {"train", "heldout"}
    assert n_traces == n_requests  # every model request is in the trace


def test_a_second_run_changes_nothing_and_a_larger_one_adds_only_new_dialogues(seeded, tmp_path):
    ws, fake = copy_workspace(seeded[0], tmp_path), seeded[2]

    def snapshot():
        with Store.open(ws / "looptool.db") as store:
            return {
                r["id"]: (r["status"], r["error"], sorted(s.id for s in store.iter_samples(dialogue_id=r["id"])),
                          [(t["call_key"], t["created_at"], t["raw"]) for t in store.traces(r["id"])],
                          [(m["idx"], m["message"]) for m in store.message_rows(r["id"])])
                for r in store.dialogue_rows()
            }  # fmt: skip

    before, requests = snapshot(), len(fake.requests)
    again = seed_run(ws, 12, concurrency=4)
    assert (again.already, again.done, again.dropped) == (12, 0, 0)
    assert snapshot() == before
    assert len(fake.requests) == requests  # not one model call

    more = seed_run(ws, 15, concurrency=4)
    assert (more.already, more.done + more.dropped) == (12, 3)
    after = snapshot()
    assert set(after) == {dialogue_id(0, i) for i in range(15)}
    assert {k: v for k, v in after.items() if k in before} == before
    assert all(after[dialogue_id(0, i)][0] in ("done", "dropped") for i in range(12, 15))


# -- self-consistency ----------------------------------------------------------------------------


def single_workspace(root: Path, fake: FakeOpenAI, extra: str = "", **kw) -> Path:
    return make_workspace(root, fake.endpoint.base_url,
                          seed=f'scenario_mix = {{single = 1.0}}\nchit_chat_rate = 0\n{extra}', **kw)  # fmt: skip


def assistant_traces(store: Store, did: str, idx: int) -> dict[str, dict]:
    return {t["call_key"]: t for t in store.traces(did) if t["call_key"].startswith(f"m{idx}.assistant.")}


def test_two_disagreeing_samples_and_a_third_that_agrees_with_one_are_accepted(fake, tmp_path):
    fake.responder = AssistantVariants([[0, 1, 0]])  # the call turn: s0 and s1 differ, s2 = one of them
    ws = single_workspace(tmp_path, fake)
    report = seed_run(ws, 1)
    did = dialogue_id(0, 0)
    assert report.done == 1, report.drop_reasons
    with Store.open(ws / "looptool.db") as store:
        message_rows = store.message_rows(did)
        assert [(m["message"].role, m["masked"]) for m in message_rows] == [
            ("user", False), ("assistant", False), ("tool", False), ("assistant", False)]  # fmt: skip
        traces = assistant_traces(store, did, 1)
        assert set(traces) == {"m1.assistant.s0.a0", "m1.assistant.s1.a0", "m1.assistant.s2.a0"}
        answers = [traces[f"m1.assistant.s{k}.a0"]["parsed"] for k in range(3)]
        assert answers[0] != answers[1] and answers[2] in answers[:2]
        call_turn = message_rows[1]["message"]
        assert {"calls": [c.model_dump() for c in call_turn.tool_calls]} == answers[2]  # the majority's answer
        assert set(assistant_traces(store, did, 3)) == {"m3.assistant.s0.a0"}  # text only: one sample
        samples = sorted(store.iter_samples(dialogue_id=did), key=lambda s: len(s.messages))
        assert [s.label.calls for s in samples] == [call_turn.tool_calls, []]


def test_three_different_samples_mask_the_turn_and_it_yields_no_sample(fake, tmp_path):
    fake.responder = AssistantVariants([[0, 1, 2], [0, 1, 2]])
    ws = single_workspace(tmp_path, fake)
    report = seed_run(ws, 1)
    did = dialogue_id(0, 0)
    assert report.done == 1, report.drop_reasons
    with Store.open(ws / "looptool.db") as store:
        message_rows = store.message_rows(did)
        assert [(m["message"].role, m["masked"]) for m in message_rows] == [
            ("user", False), ("assistant", True), ("tool", False), ("assistant", False)]  # fmt: skip
        traces = assistant_traces(store, did, 1)
        assert len({json.dumps(traces[f"m1.assistant.s{k}.a0"]["parsed"], sort_keys=True) for k in range(3)}) == 3
        assert message_rows[1]["message"].tool_calls  # kept in the conversation (the tool answered it)
        # The grammar admits only text for the reply, and any two texts agree: one sample is drawn.
        replies = assistant_traces(store, did, 3)
        assert set(replies) == {"m3.assistant.s0.a0"}
        samples = list(store.iter_samples(dialogue_id=did))
        assert [s.label.is_no_call for s in samples] == [True]  # only the final reply
        assert samples[0].messages[-2].tool_calls == message_rows[1]["message"].tool_calls  # the masked turn as context


def test_self_consistency_agreement_is_same_calls_as_a_multiset_or_both_text():
    from looptool.schema import Label
    from looptool.seed.graph import _agree

    a, b = ToolCall(name="f", arguments={"x": 1}), ToolCall(name="g", arguments={"y": [1, 2]})
    assert _agree(Label(text="Sure."), Label(text="Something else entirely"))  # any two texts agree
    assert _agree(Label(calls=[a, b]), Label(calls=[b, a]))  # order across calls does not matter
    assert not _agree(Label(calls=[a]), Label(text="Sure."))
    assert not _agree(Label(calls=[a]), Label(calls=[a, a]))
    assert not _agree(Label(calls=[b]), Label(calls=[ToolCall(name="g", arguments={"y": [2, 1]})]))  # list order counts


# -- the judge's check (tier 2) -------------------------------------------------------------------

WRONG = "The city is not the one the user named."


class ScriptedJudge:
    """Answers like schema_responder, but the judge's nth check gets `verdicts[n]` (the last one
    repeats): True or False as its "correct", or None for a server error."""

    def __init__(self, verdicts: list[bool | None]):
        self.verdicts = verdicts
        self.base = schema_responder()
        self.asked = 0
        self.lock = threading.Lock()

    def __call__(self, path: str, body: dict) -> tuple[int, dict]:
        if schema_name(body) != "judge":
            return self.base(path, body)
        with self.lock:
            n, self.asked = self.asked, self.asked + 1
        correct = self.verdicts[min(n, len(self.verdicts) - 1)]
        if correct is None:
            return 500, {"error": {"message": "the judge is down"}}
        analysis = "The calls fit the request." if correct else WRONG
        return 200, chat_reply(json.dumps({"analysis": analysis, "correct": correct}))


def sequential_workspace(root: Path, fake: FakeOpenAI, **kw) -> Path:
    """Dialogues with two call turns (the second uses the first one's result), judge check on."""
    return make_workspace(root, fake.endpoint.base_url, seed="scenario_mix = {sequential = 1.0}\nchit_chat_rate = 0",
                          judge_check="on", **kw)  # fmt: skip


def call_turns(store: Store, did: str) -> list[int]:
    return [m["idx"] for m in store.message_rows(did) if m["message"].tool_calls]


def judge_traces(store: Store, did: str) -> dict[str, dict]:
    return {t["call_key"]: t for t in store.traces(did) if t["agent"] == "judge"}


def test_judge_check_auto_is_on_unless_the_judge_is_the_embedded_model(tmp_path):
    endpoint = {"kind": "endpoint", "base_url": "http://judge:8000/v1", "model": "big"}
    assert not resolve_judge_check(WorkspaceConfig())  # every role the embedded model
    assert resolve_judge_check(WorkspaceConfig(judge=endpoint))
    assert resolve_judge_check(WorkspaceConfig(judge={"model": str(tmp_path)}))  # a local checkpoint
    assert resolve_judge_check(WorkspaceConfig(seed={"judge_check": "on"}))
    assert not resolve_judge_check(WorkspaceConfig(judge=endpoint, seed={"judge_check": "off"}))


def test_a_call_turn_the_judge_rejects_drops_the_dialogue_with_its_reason(fake, tmp_path, runner):
    fake.responder = judge = ScriptedJudge([True, False])  # the first call turn passes, the second not
    ws = sequential_workspace(tmp_path, fake)
    report = seed_run(ws, 1)
    did = dialogue_id(0, 0)
    assert (report.done, report.dropped, report.drop_reasons) == (0, 1, Counter({JUDGE_REJECTED: 1}))
    with Store.open(ws / "looptool.db") as store:
        first, second = call_turns(store, did)
        (row,) = store.dialogue_rows()
        assert (row["status"], row["error"], row["n_samples"]) == ("dropped", judge_rejection(second, WRONG), 0)
        assert row["error"] == f"judge rejected call turn m{second}: {WRONG}"
        assert list(store.iter_samples(dialogue_id=did)) == []
        traces = judge_traces(store, did)
        assert set(traces) == {f"m{first}.judge.a0", f"m{second}.judge.a0"}
        for idx, correct in ((first, True), (second, False)):
            t = traces[f"m{idx}.judge.a0"]
            assert (t["role"], t["prompt_ref"], t["status"], t["msg_idx"]) == ("judge", "agents/judge_check.md", "ok", idx)
            assert t["parsed"]["correct"] is correct
    assert judge.asked == 2

    listing = runner.invoke(app, ["dialogues", "list", "-w", str(ws), "--status", "dropped"])
    assert f"judge rejected call turn m{second}" in listing.stdout
    shown = runner.invoke(app, ["dialogues", "show", did, "-w", str(ws), "--trace"])
    assert f"error: {judge_rejection(second, WRONG)}" in shown.stdout
    assert any(line.split()[:2] == [f"m{second}.judge.a0", "judge"] for line in shown.stdout.splitlines())
    summary = runner.invoke(app, ["seed", "-w", str(ws), "--n", "1"])  # finished: nothing is asked again
    assert summary.exit_code == 0, summary.output
    assert "judge check: 1 dialogues dropped for a call turn the judge rejected" in summary.stdout
    assert f"dropped    1  {JUDGE_REJECTED}\n" in summary.stdout
    assert judge.asked == 2


@pytest.mark.slow
def test_a_judge_that_accepts_every_call_turn_keeps_the_samples_of_a_run_without_it(fake, tmp_path):
    fake.responder = judge = ScriptedJudge([True])
    checked = sequential_workspace(tmp_path / "on", fake)
    unchecked = make_workspace(tmp_path / "off", fake.endpoint.base_url,
                               seed="scenario_mix = {sequential = 1.0}\nchit_chat_rate = 0")  # fmt: skip
    assert seed_run(checked, 2).done == seed_run(unchecked, 2).done == 2
    n_call_turns = 0
    with Store.open(checked / "looptool.db") as on, Store.open(unchecked / "looptool.db") as off:
        for did in (dialogue_id(0, 0), dialogue_id(0, 1)):
            assert sorted(s.id for s in on.iter_samples(dialogue_id=did)) == sorted(
                s.id for s in off.iter_samples(dialogue_id=did))
            turns = call_turns(on, did)
            assert len(turns) == 2 and set(judge_traces(on, did)) == {f"m{i}.judge.a0" for i in turns}
            assert judge_traces(off, did) == {}
            n_call_turns += len(turns)
    assert judge.asked == n_call_turns


def test_a_run_killed_while_the_judge_checks_asks_it_only_about_turns_not_yet_checked(fake, tmp_path):
    fake.responder = ScriptedJudge([True, None])  # the server fails on the second call turn's check
    ws = sequential_workspace(tmp_path, fake, serving="max_retries = 0")
    did = dialogue_id(0, 0)
    with pytest.raises(ServingError):
        seed_run(ws, 1)
    with Store.open(ws / "looptool.db") as store:
        first, second = call_turns(store, did)
        assert store.dialogue_rows()[0]["status"] == "running"
        (checked,) = judge_traces(store, did).values()
        assert checked["call_key"] == f"m{first}.judge.a0"

    fake.requests.clear()
    fake.responder = judge = ScriptedJudge([True])
    report = seed_run(ws, 1)
    assert report.done == 1, report.drop_reasons
    assert judge.asked == 1 and [schema_name(body) for _, body in fake.requests] == ["judge"]  # the second turn only
    with Store.open(ws / "looptool.db") as store:
        traces = judge_traces(store, did)
        assert set(traces) == {f"m{first}.judge.a0", f"m{second}.judge.a0"}
        assert traces[f"m{first}.judge.a0"] == checked  # the stored check, not a new one
        assert list(store.iter_samples(dialogue_id=did))


def test_a_judge_that_never_answers_in_schema_drops_the_dialogue_after_max_attempts(fake, tmp_path):
    base = schema_responder()
    fake.responder = lambda path, body: (200, chat_reply("Looks fine.")) if schema_name(body) == "judge" else base(path, body)
    ws = single_workspace(tmp_path, fake, "max_attempts = 2", judge_check="on")
    report = seed_run(ws, 1)
    assert report.dropped == 1
    with Store.open(ws / "looptool.db") as store:
        (row,) = store.dialogue_rows()
        assert row["status"] == "dropped" and "model output for judge is not JSON" in row["error"]
        (turn,) = call_turns(store, row["id"])
        traces = judge_traces(store, row["id"])
        assert set(traces) == {f"m{turn}.judge.a0", f"m{turn}.judge.a1"}
        assert {t["status"] for t in traces.values()} == {"error"}


# -- invalid model output ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [("Sure! I will call get_weather.", "model output for assistant is not JSON"),
     ('{"calls": []}', "model output does not match assistant"),
     ('{"answer": 42}', "model output does not match assistant")],
)  # fmt: skip
def test_an_assistant_that_never_answers_in_schema_drops_the_dialogue_after_max_attempts(
    fake, tmp_path, answer, fragment
):
    base = schema_responder()
    fake.responder = lambda path, body: (200, chat_reply(answer)) if schema_name(body) == "assistant" else base(path, body)
    ws = single_workspace(tmp_path, fake, "max_attempts = 2")
    report = seed_run(ws, 1)
    did = dialogue_id(0, 0)
    assert (report.done, report.dropped) == (0, 1)
    (reason,) = report.drop_reasons
    assert fragment in reason
    with Store.open(ws / "looptool.db") as store:
        (row,) = store.dialogue_rows()
        assert row["status"] == "dropped" and fragment in row["error"] and row["n_samples"] == 0
        assert [m.role for m in store.messages(did)] == ["user"]
        traces = assistant_traces(store, did, 1)
        assert set(traces) == {f"m1.assistant.s{k}.a{a}" for k in (0, 1) for a in (0, 1)}  # 2 samples x 2 attempts
        assert all(t["status"] == "error" and fragment in t["error"] and t["raw"] == answer for t in traces.values())
    assistant_requests = [body for _, body in fake.requests if schema_name(body) == "assistant"]
    assert len(assistant_requests) == 4


def test_a_planner_that_never_answers_in_schema_drops_the_dialogue(fake, tmp_path):
    base = schema_responder()
    fake.responder = lambda path, body: (200, chat_reply("{}")) if schema_name(body) == "planner" else base(path, body)
    ws = single_workspace(tmp_path, fake)  # max_attempts defaults to 3
    report = seed_run(ws, 1)
    assert report.dropped == 1
    with Store.open(ws / "looptool.db") as store:
        (row,) = store.dialogue_rows()
        assert row["status"] == "dropped" and "model output does not match planner" in row["error"]
        assert [t["call_key"] for t in store.traces(row["id"])] == ["plan.a0", "plan.a1", "plan.a2"]
        assert store.messages(row["id"]) == []


# -- unreachable endpoint ------------------------------------------------------------------------


def test_an_unreachable_endpoint_fails_the_run_without_dropping_dialogues(tmp_path, runner):
    ws = make_workspace(tmp_path, f"http://127.0.0.1:{free_port()}/v1", serving="max_retries = 0")
    # Several dialogues in flight: when the first fails the others are cancelled mid-call, and the
    # run must end with ServingError (not a crash of the process under a closing connection).
    with pytest.raises(ServingError, match="structured call to http://127.0.0.1:.* failed"):
        seed_run(ws, 6, concurrency=6)
    with Store.open(ws / "looptool.db") as store:
        assert "dropped" not in store.dialogue_counts_by_status()
        assert list(store.iter_samples()) == []
    result = runner.invoke(app, ["seed", "-w", str(ws), "--n", "6"])
    assert result.exit_code == 1, result.output
    assert_error_line(result, "structured call to http://127.0.0.1:")
    with Store.open(ws / "looptool.db") as store:
        assert "dropped" not in store.dialogue_counts_by_status()


# -- the command line ----------------------------------------------------------------------------


def assert_error_line(result, fragment: str) -> None:
    """Exit code 1 and one line on stderr: `error: ...` with the fragment."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_seed_without_tools_is_a_one_line_error(tmp_path, runner, fake):
    fake.responder = schema_responder()
    ws = make_workspace(tmp_path, fake.endpoint.base_url, tools=False)
    result = runner.invoke(app, ["seed", "-w", str(ws), "--n", "2"])
    assert_error_line(result, "error: the workspace has no tools; run 'looptool tools synth' or 'looptool tools import'")
    assert fake.requests == []
    with Store.open(ws / "looptool.db") as store:
        assert store.dialogue_rows() == []


def test_seed_command_reports_and_dialogues_list_filters_by_status(tmp_path, runner, fake):
    """Planner answers for off-topic plans are never JSON: those dialogues are dropped."""
    base = schema_responder()
    off_topic = SCENARIO_DESCRIPTIONS["irrelevant"]

    def respond(path, body):
        if schema_name(body) == "planner" and off_topic in prompt_of(body):
            return 200, chat_reply("no plan")
        return base(path, body)

    fake.responder = respond
    ws = make_workspace(tmp_path, fake.endpoint.base_url,
                        seed='scenario_mix = {single = 1.0, irrelevant = 1.0}\nmax_attempts = 1')  # fmt: skip
    out = runner.invoke(app, ["seed", "-w", str(ws), "--n", "4", "--concurrency", "2"])
    assert out.exit_code == 0, out.output
    assert "seed: 2 verified, 2 dropped (this run: 2 verified, 2 dropped, 0 already finished" in out.stdout
    assert "verified by scenario: single 2" in out.stdout
    assert "dropped    2  model output for planner is not JSON" in out.stdout
    with Store.open(ws / "looptool.db") as store:
        by_status = {s: {r["id"] for r in store.dialogue_rows(s)} for s in ("done", "dropped")}
    assert len(by_status["done"]) == len(by_status["dropped"]) == 2

    for status, other in (("done", "dropped"), ("dropped", "done")):
        listing = runner.invoke(app, ["dialogues", "list", "-w", str(ws), "--status", status])
        assert listing.exit_code == 0, listing.output
        lines = listing.stdout.splitlines()
        assert lines[0].split()[:2] == ["id", "status"] and lines[-1] == "2 shown; done 2, dropped 2"
        assert {line.split()[0] for line in lines[1:-1]} == by_status[status]
        assert all(line.split()[1] == status for line in lines[1:-1])
        assert not any(did in listing.stdout for did in by_status[other])
    dropped = runner.invoke(app, ["dialogues", "list", "-w", str(ws), "--status", "dropped"]).stdout
    assert dropped.count("model output for planner is not JSON") == 2
    everything = runner.invoke(app, ["dialogues", "list", "-w", str(ws)])
    assert everything.stdout.splitlines()[-1] == "4 shown; done 2, dropped 2"
    limited = runner.invoke(app, ["dialogues", "list", "-w", str(ws), "--limit", "1"])
    assert len(limited.stdout.splitlines()) == 3

    bogus = runner.invoke(app, ["dialogues", "list", "-w", str(ws), "--status", "bogus"])
    assert_error_line(bogus, "--status: unknown status 'bogus'")


def test_dialogues_show_prints_plan_transcript_samples_and_trace(seeded, runner):
    ws = seeded[0]
    with Store.open(ws / "looptool.db") as store:
        rows_ = store.dialogue_rows()
        sequential = next(r for r in rows_ if r["scenario"] == "sequential")
        did = sequential["id"]
        prefix = next(did[:k] for k in range(3, len(did)) if sum(r["id"].startswith(did[:k]) for r in rows_) == 1)
        the_plan = Plan.model_validate(store.get_dialogue(did, with_messages=False).plan)
        messages = store.messages(did)
        samples = list(store.iter_samples(dialogue_id=did))
        traces = store.traces(did)

    shown = runner.invoke(app, ["dialogues", "show", prefix, "-w", str(ws)])
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert out.splitlines()[0] == f"dialogue {did}  status=done"
    assert f"scenario: sequential  split: {the_plan.split}" in out and f"goal:     {the_plan.goal}" in out
    assert f"tools:    {', '.join(the_plan.tools)}" in out and "\nplan:\n" in out
    for i, turn in enumerate(the_plan.turns, start=1):
        assert f"\n  {i}. user {turn.kind} -> " in out
    assert f"call({the_plan.calls()[0].tool}{{" in out
    assert "\ntranscript:\n" in out
    for idx, m in enumerate(messages):
        who = m.role.upper() if m.role != "tool" else f"TOOL {m.name}"
        assert f"  [{idx}] {who}  (m, " in out
    assert f"\nsamples: {len(samples)}\n" in out and samples
    assert all(s.id in out for s in samples)
    assert f"agent calls: {len(traces)} (--trace shows each)" in out
    assert "raw:" not in out

    traced = runner.invoke(app, ["dialogues", "show", did, "-w", str(ws), "--trace"])
    assert traced.exit_code == 0, traced.output
    lines = traced.stdout.splitlines()
    start = lines.index(f"agent calls: {len(traces)}")
    call_lines = [line for line in lines[start + 1 :] if not line.startswith("      ")]
    assert [line.split()[0] for line in call_lines] == [t["call_key"] for t in traces]
    assert [line.split()[1] for line in call_lines] == [t["agent"] for t in traces]
    assert sum(line.startswith("      raw: ") for line in lines[start + 1 :]) == len(traces)
    assert {t["agent"] for t in traces} == {"planner", "user", "assistant", "tool"}


def test_dialogues_show_with_an_unknown_or_ambiguous_id_is_a_one_line_error(seeded, runner):
    ws = seeded[0]
    unknown = runner.invoke(app, ["dialogues", "show", "d_nothing", "-w", str(ws)])
    assert_error_line(unknown, "no dialogue with id 'd_nothing'")
    ambiguous = runner.invoke(app, ["dialogues", "show", "d_", "-w", str(ws)])
    assert_error_line(ambiguous, "12 dialogues with id 'd_'")


# -- config --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ("scenario_mix = {single = 1.0, chatty = 2.0}", "seed.scenario_mix: Value error, unknown scenario 'chatty'"),
        ("scenario_mix = {single = 0.0}", "seed.scenario_mix: Value error, weights must be >= 0 and at least one > 0"),
        ("min_tools = 5\nmax_tools = 2", "seed: Value error, min_tools (5) is larger than max_tools (2)"),
        ("guidance = 'always'", "seed.guidance"),
    ],
)
def test_bad_seed_config_is_a_one_line_error_naming_the_field(tmp_path, section, fragment):
    (tmp_path / "looptool.toml").write_text(f"[seed]\n{section}\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


# -- helpers used above --------------------------------------------------------------------------


def test_assistant_variants_helper_gives_equal_answers_for_equal_variants():
    responder = AssistantVariants([[0, 1, 0]])
    body = {"messages": [{"role": "user", "content": "x"}],
            "response_format": {"json_schema": {"name": "assistant", "schema": {"type": "object", "properties": {
                "text": {"type": "string", "minLength": 2}}}}}}  # fmt: skip
    answers = [responder("/v1/chat/completions", body)[1]["choices"][0]["message"]["content"] for _ in range(4)]
    assert answers[0] == answers[2] == answers[3] != answers[1]


@pytest.mark.parametrize(
    "pattern",
    ["^[A-Z]{3}$", r"^\d+-[a-z]?x*$", r"^[^\n]{0,60}São Paulo \(SP\)[^\n]{0,60}1\.5[^\n]{0,60}$"],
)
def test_regex_instance_matches_its_pattern(pattern):
    for k in range(20):
        value = regex_instance(pattern, random.Random(k))
        assert re.fullmatch(pattern, value), (pattern, value)

