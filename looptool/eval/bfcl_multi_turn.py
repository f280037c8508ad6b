"""Score one BFCL-v3 multi-turn entry as BFCL's `multi_turn_checker` (bfcl-eval 2025.8.6.2) does.

A model's answer to an entry is, per turn, the raw text of each step it took (a step is one model
reply; a reply with calls is followed by their results and another step). Scoring replays it:

1. The answer must have exactly as many turns as the ground truth, else it fails
   ("force_terminated") and nothing else is looked at.
2. Each step's text is read as BFCL reads a Qwen FC model's step (`decode_execute`; here
   `bfcl_decode.fc_step_calls`): the `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`
   blocks after the last `</think>`. A step that yields no call -- plain text, a block that is
   not a JSON object, a block without name or arguments -- contributes nothing.
3. The model and the ground truth each get fresh backend instances (`BackendSession`), which live
   across the turns of the entry; every turn's calls are run in step order.
4. A turn where the ground truth has calls and the model decoded none fails the entry.
5. Turns whose ground truth is empty are not checked (calls made there still change the state).
6. State check after each checked turn: every public attribute of each ground-truth instance must
   equal (`==`) the model's.
7. Response check: the ground truth's result strings of the turn must be a multiset subset of all
   the model's results so far, earlier turns included.

The first failing turn decides, and the reason names the turn and what differed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from looptool.eval.bfcl_checker import CheckResult
from looptool.eval.bfcl_decode import fc_step_calls
from looptool.eval.bfcl_multi_turn_data import MultiTurnEntry
from looptool.eval.bfcl_multi_turn_exec import BackendSession
from looptool.schema import ToolCall

FORCE_TERMINATED = "multi_turn:force_terminated"
EMPTY_TURN = "multi_turn:empty_turn_model_response"
STATE_MISMATCH = "multi_turn:instance_state_mismatch"
RESPONSE_MISMATCH = "multi_turn:execution_response_mismatch"

_SHOWN = 160  # characters of a value quoted in a reason


def decode_step(text: str) -> list[ToolCall]:
    """The calls of one step; [] when the step holds none or any of its blocks is malformed."""
    return fc_step_calls(text)


def decode_turns(output: Sequence[Sequence[str]]) -> list[list[list[ToolCall]]]:
    """Per turn, the steps that hold calls (steps without calls are dropped, as BFCL does)."""
    return [[calls for calls in map(decode_step, turn) if calls] for turn in output]


def check_multi_turn(entry: MultiTurnEntry, output: Sequence[Sequence[str]]) -> CheckResult:
    """Pass or fail `output` (per turn, the text of each step) on `entry`, with a reason."""
    if len(output) != len(entry.ground_truth):
        return CheckResult(False, FORCE_TERMINATED,
                           f"the answer has {len(output)} turns, the ground truth {len(entry.ground_truth)}")
    return check_decoded(entry, decode_turns(output))


def check_decoded(entry: MultiTurnEntry, turns: Sequence[Sequence[Sequence[ToolCall]]]) -> CheckResult:
    """The checks after decoding: `turns[i]` holds turn i's steps, each a non-empty call list."""
    if len(turns) != len(entry.ground_truth):
        return CheckResult(False, FORCE_TERMINATED,
                           f"the answer has {len(turns)} turns, the ground truth {len(entry.ground_truth)}")
    model = BackendSession(entry)
    truth = BackendSession(entry, reset_fixtures=False)  # shares the fixtures, as in BFCL
    model_results: list[str] = []
    for index, (steps, expected_calls) in enumerate(zip(turns, entry.ground_truth)):
        turn_results = [model.execute(call) for step in steps for call in step]
        model_results += turn_results
        expected = [truth.execute_ground_truth(text) for text in expected_calls]
        if not expected_calls:
            continue
        if not steps:
            return CheckResult(False, EMPTY_TURN, f"turn {index}: the model made no call; the ground truth makes "
                                                  f"{len(expected_calls)}")
        for class_name in truth.instances:
            differences = _state_differences(model.public_state(class_name), truth.public_state(class_name))
            if differences:
                return CheckResult(False, STATE_MISMATCH, f"turn {index}: {class_name} state differs from the "
                                                          f"ground truth in {'; '.join(differences)}")
        missing = _missing(expected, model_results)
        if missing:
            shown = ", ".join(_short(r) for r in turn_results[:3]) + (", ..." if len(turn_results) > 3 else "")
            return CheckResult(False, RESPONSE_MISMATCH,
                               f"turn {index}: {len(missing)} ground-truth result(s) not among the model's results "
                               f"so far, e.g. {_short(missing[0])}; the model's results this turn: {shown}")
    return CheckResult(True)


def _state_differences(model: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    """The attributes whose values differ, each with where inside it and both values there."""
    out = []
    for name, expected in truth.items():
        actual = model.get(name, _ABSENT)
        if actual != expected:
            where, got, want = _first_difference(actual, expected, name, set(), 0)
            out.append(f"{where} (model {_short(got)}, ground truth {_short(want)})")
    return out


_ABSENT = "<absent>"
_MAX_DEPTH = 32


def _first_difference(a: Any, b: Any, path: str, seen: set[tuple[int, int]], depth: int) -> tuple[str, Any, Any]:
    """Walk two unequal values down to the first place they differ (dict keys, list items, public
    attributes of objects such as the file system's directories), so a reason can say
    `root.contents['document'].contents['temp']` instead of quoting two whole trees."""
    seen.add((id(a), id(b)))
    if depth < _MAX_DEPTH and type(a) is type(b):
        children: list[tuple[str, Any, Any]] = []
        if isinstance(a, dict):
            keys = [*a, *(k for k in b if k not in a)]
            children = [(f"{path}[{k!r}]", a.get(k, _ABSENT), b.get(k, _ABSENT)) for k in keys]
        elif isinstance(a, (list, tuple)) and len(a) == len(b):
            children = [(f"{path}[{i}]", x, y) for i, (x, y) in enumerate(zip(a, b))]
        elif hasattr(a, "__dict__") and not isinstance(a, type):
            public = [k for k in vars(a) if not k.startswith("_")]
            children = [(f"{path}.{k}", getattr(a, k), getattr(b, k, _ABSENT)) for k in public]
        for where, x, y in children:
            # A pair already on the way down (a directory's parent) is being compared there.
            if (id(x), id(y)) not in seen and x != y:
                return _first_difference(x, y, where, seen, depth + 1)
    return path, a, b


def _missing(expected: list[str], got: list[str]) -> list[str]:
    """The expected items not covered by `got`, counted as multisets (order ignored)."""
    available = Counter(got)
    missing = []
    for item in expected:
        if available[item] > 0:
            available[item] -= 1
        else:
            missing.append(item)
    return missing


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")
