"""The one place that reads tool calls out of model text and decides whether two sets of calls
agree.

Reward, probing, label verification, expansion and evaluation all go through this module, so a
prediction is judged the same way at every stage: a call the reward accepts is a call the probe
accepts. Parsing is deliberately strict -- a half-readable answer is an error, never a partial
success -- and it never raises, because it runs on arbitrary (possibly truncated or adversarial)
model output inside training loops. Python-style calls are read with `ast`, never evaluated.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from looptool.schema import Label, ToolCall, canonical_json

CallFormat = Literal["tool_call_tags", "json", "python", "none"]
ParseStatus = Literal["calls", "no_call", "error"]

MAX_CHARS = 200_000  # longer outputs are errors: no real answer is this long, and it bounds work
MAX_DEPTH = 64  # nesting limit for argument values; keeps every later recursion far from the limit

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
# "Looks like someone tried to call a function": `f(`, `[f(`, `math.factorial(`. No space is allowed
# before "(" so that prose such as "Paris (France) is ..." stays plain text.
_CALL_START = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\(")
_FENCE = re.compile(r"^```[A-Za-z]*[ \t]*\n?(.*?)\s*```$", re.DOTALL)
_WS = re.compile(r"\s*")


@dataclass(frozen=True)
class ParseResult:
    """What a model's text amounts to: calls, a deliberate no-call answer, or an error.

    `format` is the syntax the text was read as; for an error it is the syntax that was attempted
    (None when nothing was recognisable), for plain text it is "none".
    """

    calls: list[ToolCall] = field(default_factory=list)
    status: ParseStatus = "no_call"
    error: str | None = None
    format: CallFormat | None = None

    @property
    def ok(self) -> bool:
        return self.status != "error"

    @property
    def is_no_call(self) -> bool:
        return self.status == "no_call"


class _ParseError(Exception):
    """Internal: carries a one-line message up to parse_calls, which turns it into a result."""


def _fail(message: str, fmt: CallFormat | None) -> ParseResult:
    return ParseResult(status="error", error=" ".join(message.split())[:500], format=fmt)


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_calls(text: str) -> ParseResult:
    """Read the calls in a model's output. Never raises; problems come back as status "error"."""
    try:
        return _parse(text)
    except (RecursionError, MemoryError):
        return _fail("output is nested too deeply to parse", None)
    except Exception as exc:  # last-resort guard: a parser bug must not crash a training loop
        return _fail(f"internal parse error: {type(exc).__name__}: {exc}", None)


def _parse(text: str) -> ParseResult:
    if not isinstance(text, str):
        return _fail(f"expected str, got {type(text).__name__}", None)
    if len(text) > MAX_CHARS:
        return _fail(f"output too long ({len(text)} chars > {MAX_CHARS})", None)
    body = text.strip()
    # Reasoning is not the answer. Qwen3 templates open <think> in the prompt, so the output may
    # hold only the closing tag; everything up to the first </think> is reasoning -- unless the
    # text opens as a call, in which case the tag is inside an argument value, not after reasoning.
    if "</think>" in body and (body.startswith("<think>") or not _opens_as_call(body)):
        body = body.split("</think>", 1)[1].strip()
    elif body.startswith("<think>"):
        return _fail("unterminated <think> block (output truncated?)", None)
    if not body:
        return ParseResult(status="no_call", format="none")
    if _OPEN in body:
        return _guard(_parse_tags, body, "tool_call_tags")

    body = _strip_fence(body)
    json_error = None
    if body[:1] in ("{", "["):
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            json_error = f"invalid JSON: {exc}"
        else:
            return _guard(lambda d: _from_json(d, allow_empty=True), data, "json")
    if body.startswith("[") or _CALL_START.match(body):
        result = _guard(_parse_python, body, "python")
        if result.ok or _CALL_START.match(body) or json_error is None:
            return result
    if json_error is not None:
        return _fail(json_error, "json")
    if _CLOSE in body:
        return _fail(f"stray {_CLOSE} without an opening tag", "tool_call_tags")
    return ParseResult(status="no_call", format="none")


def _opens_as_call(text: str) -> bool:
    return text.startswith(("[", "{", _OPEN, "```")) or bool(_CALL_START.match(text))


def _guard(parser: Callable[[Any], list[ToolCall]], arg: Any, fmt: CallFormat) -> ParseResult:
    """Run one format's parser, turning its failure into an error result of that format."""
    try:
        calls = parser(arg)
    except _ParseError as exc:
        return _fail(str(exc), fmt)
    except (RecursionError, MemoryError):
        return _fail("output is nested too deeply to parse", fmt)
    return ParseResult(calls=calls, status="calls" if calls else "no_call", format=fmt)


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text


def _parse_tags(text: str) -> list[ToolCall]:
    """Every <tool_call> block must hold valid JSON and be closed; free text around is ignored.

    Blocks are decoded in sequence with raw_decode (not a regex), so a "</tool_call>" inside a
    JSON string does not end its block early.
    """
    decoder, calls, pos, n = json.JSONDecoder(), [], 0, 0
    while (start := text.find(_OPEN, pos)) >= 0:
        n += 1
        begin = _WS.match(text, start + len(_OPEN)).end()
        if _CLOSE not in text[begin:]:
            raise _ParseError(f"unclosed {_OPEN} block {n} (output truncated?)")
        try:
            data, end = decoder.raw_decode(text, begin)
        except json.JSONDecodeError as exc:
            raise _ParseError(f"{_OPEN} block {n}: invalid JSON: {exc}") from None
        end = _WS.match(text, end).end()
        if not text.startswith(_CLOSE, end):
            raise _ParseError(f"{_OPEN} block {n}: unexpected text after the JSON value")
        calls.extend(_from_json(data, allow_empty=False))
        pos = end + len(_CLOSE)
    return calls


def _from_json(data: Any, allow_empty: bool) -> list[ToolCall]:
    """Accept a call object, a list of them, or an OpenAI message's {"tool_calls": [...]}.

    An empty list is an explicit "no calls" (BFCL irrelevance answers) except inside a
    <tool_call> block, which announces a call.
    """
    if isinstance(data, dict) and "tool_calls" in data and "name" not in data:
        data = data["tool_calls"]
        if not isinstance(data, list):
            raise _ParseError("'tool_calls' must be a list")
    items = [data] if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise _ParseError(f"expected a call object or a list of them, got {type(data).__name__}")
    if not items and not allow_empty:
        raise _ParseError("empty list of calls")
    return [_call_from_obj(item) for item in items]


_CALL_KEYS = {"name", "arguments", "parameters", "id", "type"}


def _call_from_obj(obj: Any) -> ToolCall:
    if not isinstance(obj, dict):
        raise _ParseError(f"a call must be an object, got {type(obj).__name__}")
    if isinstance(obj.get("function"), dict):  # OpenAI: {"type": "function", "function": {...}}
        if set(obj) - {"function", "type", "id"} or obj.get("type", "function") != "function":
            raise _ParseError("malformed OpenAI tool call wrapper")
        obj = obj["function"]
    if unknown := set(obj) - _CALL_KEYS:  # e.g. "args": better an error than a zero-arg call
        raise _ParseError(f"unexpected keys in call object: {sorted(unknown)}")
    if "arguments" in obj and "parameters" in obj:
        raise _ParseError("call has both 'arguments' and 'parameters'")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # OpenAI encodes arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise _ParseError(f"arguments string is not valid JSON: {exc}") from None
    return _make_call(obj.get("name"), args)


def _make_call(name: Any, args: Any) -> ToolCall:
    if not isinstance(name, str) or not name.strip():
        raise _ParseError(f"call name must be a non-empty string, got {name!r:.80}")
    if not isinstance(args, dict):
        raise _ParseError(f"arguments of {name!r:.80} must be an object, got {type(args).__name__}")
    if any(not isinstance(k, str) for k in args):
        raise _ParseError(f"arguments of {name!r:.80} have non-string keys")
    if _too_deep(args, MAX_DEPTH):
        raise _ParseError(f"arguments of {name!r:.80} nest deeper than {MAX_DEPTH}")
    return ToolCall(name=name, arguments=args)


def _too_deep(value: Any, budget: int) -> bool:
    if budget < 0:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, budget - 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, budget - 1) for v in value)
    return False


def _parse_python(text: str) -> list[ToolCall]:
    """BFCL's `[f(a=1), g.h(b="x")]` or a bare `f(a=1)`, read from the AST only (never eval)."""
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError) as exc:
        raise _ParseError(f"invalid Python call syntax: {exc}") from None
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    return [_call_from_ast(node) for node in nodes]


def _call_from_ast(node: ast.expr) -> ToolCall:
    if not isinstance(node, ast.Call):
        raise _ParseError(f"expected a function call, got {type(node).__name__}")
    name = _dotted_name(node.func)  # first, so `__import__('os').system(...)` says why it fails
    if node.args:
        raise _ParseError("positional arguments are not supported; use keyword arguments")
    args: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise _ParseError("**kwargs unpacking is not supported")
        if kw.arg in args:
            raise _ParseError(f"keyword argument {kw.arg!r} repeated")
        args[kw.arg] = _literal(kw.value, MAX_DEPTH)
    return _make_call(name, args)


def _dotted_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted_name(node.value)}.{node.attr}"
    raise _ParseError("call target must be a plain or dotted name")


def _literal(node: ast.expr, depth: int) -> Any:
    """A JSON-like value from an AST node. Tuples become lists: JSON has no tuples, and labels
    are JSON, so `(1, 2)` and `[1, 2]` must compare equal."""
    if depth < 0:
        raise _ParseError(f"argument values nest deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        if node.value is None or isinstance(node.value, (str, bool, int, float)):
            return node.value
        raise _ParseError(f"unsupported constant {type(node.value).__name__}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = node.operand
        if isinstance(operand, ast.Constant) and type(operand.value) in (int, float):
            return -operand.value if isinstance(node.op, ast.USub) else operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item, depth - 1) for item in node.elts]
    if isinstance(node, ast.Dict):
        out = {}
        for key, value in zip(node.keys, node.values):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise _ParseError("dict keys must be string constants")
            out[key.value] = _literal(value, depth - 1)
        return out
    if isinstance(node, ast.Call):
        raise _ParseError("nested calls are not supported in argument values")
    if isinstance(node, ast.Name):
        raise _ParseError(f"bare name {node.id!r} is not a value (quote strings)")
    raise _ParseError(f"unsupported argument value ({type(node).__name__})")


# ---------------------------------------------------------------------------------------------
# Rendering


def format_calls(calls: list[ToolCall], style: Literal["tool_call_tags", "json", "python"]) -> str:
    """Render calls so that parse_calls gives them back (the inverse of parsing).

    The python style cannot express NaN/infinity, keyword names or non-identifier argument names
    and raises ValueError for them; tuples anywhere come back as lists in every style.
    """
    objs = [{"name": c.name, "arguments": c.arguments} for c in calls]
    if style == "tool_call_tags":
        return "\n".join(f"{_OPEN}\n{json.dumps(o, ensure_ascii=False)}\n{_CLOSE}" for o in objs)
    if style == "json":
        return json.dumps(objs, ensure_ascii=False)
    if style == "python":
        return "[" + ", ".join(_py_call(c) for c in calls) + "]"
    raise ValueError(f"unknown call style {style!r}")


def _is_py_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _py_call(call: ToolCall) -> str:
    if not all(_is_py_name(part) for part in call.name.split(".")):
        raise ValueError(f"{call.name!r} cannot be written as a Python call")
    bad = [k for k in call.arguments if not _is_py_name(k)]
    if bad:
        raise ValueError(f"argument names {bad} cannot be Python keyword arguments")
    return f"{call.name}({', '.join(f'{k}={_py_value(v)}' for k, v in call.arguments.items())})"


def _py_value(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} has no Python literal")
    if isinstance(value, dict):
        if any(not isinstance(k, str) for k in value):
            raise ValueError("dict keys must be strings")
        return "{" + ", ".join(f"{k!r}: {_py_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_py_value(v) for v in value) + "]"
    if value is None or isinstance(value, (str, int, float)):
        return repr(value)
    raise ValueError(f"cannot render {type(value).__name__} as a Python literal")


# ---------------------------------------------------------------------------------------------
# Comparison


def _canon(value: Any) -> Any:
    """Normalise for comparison: 1.0 -> 1 (numbers that are equal compare equal), while bools
    stay bools (True is not 1), and tuples become lists."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    return value


def match_key(call: ToolCall) -> str:
    """The canonical string under which two calls are the same call in strict mode."""
    return canonical_json({"name": call.name, "arguments": _canon(call.arguments)})


def _strict_match(predicted: list[ToolCall], expected: list[ToolCall]) -> bool:
    return Counter(map(match_key, predicted)) == Counter(map(match_key, expected))


def calls_match(predicted: list[ToolCall], expected: list[ToolCall]) -> bool:
    """Do two call lists mean the same action? Calls form a multiset (parallel calls may come in
    any order, duplicates count); order inside list arguments matters. (BFCL's own, looser rules
    are `looptool.eval.bfcl_checker.calls_match_bfcl`, used by the benchmark only.)"""
    return _strict_match(predicted, expected)


def label_matches(parse: ParseResult, label: Label) -> bool:
    """The binary reward: an unreadable answer never scores, a no-call label wants no call, and
    a call label wants exactly its calls. A label's accepted alternatives (a judge's BOTH_OK)
    count as it does: matching any accepted answer is a match."""
    if not parse.ok:
        return False
    return any(_answer_matches(parse, answer) for answer in label.answers())


def _answer_matches(parse: ParseResult, answer: Label) -> bool:
    if answer.is_no_call:
        return parse.status == "no_call"
    return parse.status == "calls" and calls_match(parse.calls, answer.calls)


def diff_calls(predicted: list[ToolCall], expected: list[ToolCall]) -> dict[str, list[ToolCall]]:
    """What a prediction lacks and what it adds, as multisets under strict equality; for judges
    and the TUI to show *why* a probe failed."""
    pred_keys, exp_keys = [match_key(c) for c in predicted], [match_key(c) for c in expected]
    missing = Counter(exp_keys) - Counter(pred_keys)
    extra = Counter(pred_keys) - Counter(exp_keys)
    return {"missing": _take(expected, exp_keys, missing), "extra": _take(predicted, pred_keys, extra)}


def _take(calls: list[ToolCall], keys: list[str], wanted: Counter) -> list[ToolCall]:
    wanted, out = Counter(wanted), []
    for call, key in zip(calls, keys):
        if wanted[key] > 0:
            wanted[key] -= 1
            out.append(call)
    return out
