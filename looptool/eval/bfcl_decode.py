"""Model text -> BFCL's decoded call list `[{func_name: {param: value}}, ...]`, and back.

Two formats:

* "tool_call_tags": `<tool_call>` blocks, read as BFCL reads them for the Qwen FC handler, the
  BFCL model whose answers take this form (`QwenFCHandler._extract_tool_calls` and `decode_ast`
  of bfcl-eval 2025.8.6.2; `fc_calls`): the text after the last `</think>`; every
  `<tool_call>\n...\n</tool_call>` block -- the newlines belong to the pattern, so a block on one
  line, or one cut off before its closing tag, is not a block, and text around the blocks is
  ignored; if any block is not a JSON object the answer holds no call (`[]`); a block without
  "name" or "arguments", or with arguments that are not an object, is a decode failure. Text
  without blocks (prose, bare JSON, Python-style calls) is no call. This is stricter than the
  project's own reader (`looptool.calls.parse_calls`, which training and the held-out evaluation
  use: it also reads blocks without the newlines, bare JSON and Python-style calls, and rejects
  an answer with any malformed block), so that a BFCL score is the leaderboard's verdict on
  the same text. A name that is not a string is written as a string (BFCL keeps it as the
  dict key; it matches no function either way).
* "python": BFCL's prompt-mode decoder (`default_decode_ast_prompting` of BFCL v3) for outputs
  such as `[get_weather(city="Paris"), math.factorial(n=5)]`. Its semantics are kept: strip
  backticks, newlines and spaces, wrap in `[...]`, strip `[]'` again, parse as one Python
  expression; read keyword arguments only (positional ones are dropped silently); constants
  literal, lists/dicts/tuples recursively (tuples stay tuples), a bare name becomes its
  identifier as a string, a call without keywords its source text, a call with keywords a
  nested `{name: {...}}`. Prose fails to parse and is a decode failure.
  Differences: nothing is ever evaluated. BFCL `eval`s arithmetic (`2**10`, `60*60`); here
  only arithmetic on number and string literals is computed, within size limits, and
  anything else (names, calls) inside it is a decode failure. BFCL turns `+5` into -5 and
  `not x` into a negation; here `+5` is 5 and `not`/`~` fail. `**kwargs` becomes a parameter
  named "**" (BFCL: None), which no function declares. A reasoning block closed by
  `</think>` is dropped first, as BFCL's handlers for reasoning models do before decoding.

Decoding never raises on model text: failures come back as `Decoded(None, error_type, error)`.
Java and JavaScript prompt-mode outputs (which BFCL reads with tree-sitter) are not decoded
here; in the "tool_call_tags" format their values arrive as strings, as BFCL expects.

The encoders write decoded calls back as text in either format, and `oracle_calls` builds the
calls a perfect model would make for an entry; tests and benchmarks render it through both.
"""

from __future__ import annotations

import ast
import copy
import json
import keyword
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Literal

from looptool.calls import MAX_CHARS, format_calls
from looptool.eval.bfcl_data import Entry, language_of
from looptool.eval.bfcl_literals import java_literal, js_literal
from looptool.schema import ToolCall

DecodeFormat = Literal["tool_call_tags", "python"]
DECODE_FAILED = "ast_decoder:decoder_failed"

_MAX_DEPTH = 64  # nesting limit for argument values
_MAX_INT_BITS = 4096  # arithmetic results beyond this are refused (no 9**9**9)
_MAX_STR = 100_000


@dataclass(frozen=True)
class Decoded:
    """A decoded output: `calls` is None exactly when decoding failed (then `error_type` is
    "ast_decoder:decoder_failed" and `error` says why, in one line)."""

    calls: list[dict] | None
    error_type: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.calls is not None


class _DecodeError(Exception):
    """Internal: a one-line reason the text does not decode."""


def _failed(message: str) -> Decoded:
    return Decoded(None, DECODE_FAILED, " ".join(message.split())[:500])


def decode(text: str, fmt: DecodeFormat = "tool_call_tags") -> Decoded:
    """Decode a model's text in the given format. Never raises for any text."""
    if fmt not in ("tool_call_tags", "python"):
        raise ValueError(f"unknown decode format {fmt!r}; use 'tool_call_tags' or 'python'")
    try:
        if not isinstance(text, str):
            return _failed(f"expected str, got {type(text).__name__}")
        if len(text) > MAX_CHARS:
            return _failed(f"output too long ({len(text)} chars > {MAX_CHARS})")
        return _decode_tags(text) if fmt == "tool_call_tags" else Decoded(_decode_python(text))
    except _DecodeError as exc:
        return _failed(str(exc))
    except (RecursionError, MemoryError):
        return _failed("output is nested too deeply to decode")
    except Exception as exc:  # last-resort guard: a decoder bug must not end an evaluation
        return _failed(f"internal decode error: {type(exc).__name__}: {exc}")


def _decode_tags(text: str) -> Decoded:
    return Decoded([{name: arguments} for name, arguments in fc_calls(text)])


_FC_BLOCK = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.DOTALL)  # QwenFCHandler._extract_tool_calls


def fc_calls(text: str) -> list[tuple[str, dict]]:
    """The (name, arguments) of the `<tool_call>` blocks in a model's answer, as BFCL's Qwen FC
    handler reads them (see the module doc); [] when any block is not a JSON object. Raises
    `_DecodeError` where BFCL's decoder raises."""
    if "</think>" in text:
        text = text.split("</think>")[-1].lstrip("\n")
    blocks = []
    for body in _FC_BLOCK.findall(text):
        try:
            blocks.append(json.loads(body))
        except ValueError:
            return []  # kept as a string there, and a string among the blocks means no call
    if any(type(block) is not dict for block in blocks):
        return []
    calls = []
    for block in blocks:
        if "name" not in block or "arguments" not in block:
            raise _DecodeError(f"a <tool_call> block without {'name' if 'name' not in block else 'arguments'}")
        if not isinstance(block["arguments"], dict):
            raise _DecodeError(f"the arguments of {block['name']!r} are not a JSON object")
        calls.append((block["name"] if isinstance(block["name"], str) else json.dumps(block["name"]),
                      dict(block["arguments"])))
    return calls


def fc_step_calls(text: str) -> list[ToolCall]:
    """The calls of one multi-turn step as BFCL's multi-turn runner takes them (`decode_execute`,
    its exceptions skipped): `fc_calls`, and [] where it raises."""
    try:
        return [ToolCall(name=name, arguments=arguments) for name, arguments in fc_calls(text)]
    except (_DecodeError, ValueError):  # ValueError: a call the schema cannot hold (pydantic's ValidationError)
        return []


# ---------------------------------------------------------------------------------------------
# BFCL prompt-mode (Python) decoding


def _decode_python(text: str) -> list[dict]:
    if "</think>" in text:
        text = text.rpartition("</think>")[2]
    body = text.strip("`\n ")
    if not body.startswith("["):
        body = "[" + body
    if not body.endswith("]"):
        body = body + "]"
    body = body.strip("[]'")
    try:
        tree = ast.parse(body, mode="eval").body
    except SyntaxError as exc:
        raise _DecodeError(f"not a Python call list: {exc.msg} (line {exc.lineno})") from None
    except ValueError as exc:  # e.g. NUL bytes
        raise _DecodeError(f"not a Python call list: {exc}") from None
    if isinstance(tree, ast.Call):
        nodes = [tree]
    elif isinstance(tree, (ast.List, ast.Tuple, ast.Set)):
        nodes = tree.elts
    else:
        raise _DecodeError(f"expected function calls, got a {type(tree).__name__} expression")
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            raise _DecodeError(f"expected a function call, got a {type(node).__name__} expression")
        calls.append(_call(node, _MAX_DEPTH))
    return calls


def _call(node: ast.Call, depth: int) -> dict:
    """`a.b.f(x=1)` -> {"a.b.f": {"x": 1}}. As in BFCL, positional arguments are ignored and
    only the attribute/name parts of the target make up the name."""
    parts = []
    target = node.func
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    args = {}
    for kw in node.keywords:
        args["**" if kw.arg is None else kw.arg] = _value(kw.value, depth - 1)
    return {".".join(reversed(parts)): args}


def _value(node: ast.expr, depth: int) -> Any:
    if depth < 0:
        raise _DecodeError(f"argument values nest deeper than {_MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):
        return _unary(node)
    if isinstance(node, ast.List):
        return [_value(item, depth - 1) for item in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(item, depth - 1) for item in node.elts)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise _DecodeError("dict unpacking (**) is not supported in argument values")
        try:
            return {_value(k, depth - 1): _value(v, depth - 1) for k, v in zip(node.keys, node.values)}
        except TypeError:
            raise _DecodeError("dict keys must be hashable literals") from None
    if isinstance(node, ast.BinOp):
        return _arithmetic(node, depth)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _call(node, depth - 1) if node.keywords else ast.unparse(node)
    if isinstance(node, ast.Subscript):
        return f"{ast.unparse(node.value)}[{ast.unparse(node.slice)}]"
    raise _DecodeError(f"unsupported argument value ({type(node).__name__})")


def _unary(node: ast.UnaryOp) -> Any:
    operand = node.operand
    if not (isinstance(operand, ast.Constant) and type(operand.value) in (int, float, complex)):
        raise _DecodeError("a sign applies only to a number literal")
    if isinstance(node.op, ast.USub):
        return -operand.value
    if isinstance(node.op, ast.UAdd):
        return operand.value
    raise _DecodeError(f"unsupported operator {type(node.op).__name__}")


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _arithmetic(node: ast.expr, depth: int) -> Any:
    """What BFCL's `eval` of a BinOp would give, for literals only and within size limits."""
    if depth < 0:
        raise _DecodeError(f"arithmetic nests deeper than {_MAX_DEPTH}")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, str):
        return node.value
    if isinstance(node, ast.UnaryOp):
        return _unary(node)
    if not (isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS):
        raise _DecodeError(f"only arithmetic on literals is computed, not {ast.unparse(node)[:60]!r}")
    left, right = _arithmetic(node.left, depth - 1), _arithmetic(node.right, depth - 1)
    if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 1024:
        raise _DecodeError("exponent too large")
    if isinstance(node.op, ast.Mult) and any(isinstance(x, str) for x in (left, right)):
        count = right if isinstance(left, str) else left
        if isinstance(count, int) and count * len(left if isinstance(left, str) else right) > _MAX_STR:
            raise _DecodeError("repeated string too long")
    try:
        result = _OPERATORS[type(node.op)](left, right)
    except (ArithmeticError, TypeError, ValueError) as exc:
        raise _DecodeError(f"cannot compute {ast.unparse(node)[:60]!r}: {exc}") from None
    if isinstance(result, int) and result.bit_length() > _MAX_INT_BITS:
        raise _DecodeError("arithmetic result too large")
    return result


# ---------------------------------------------------------------------------------------------
# Encoding (the inverse, for oracles and tests)


def encode_tool_call_tags(calls: list[dict]) -> str:
    """Decoded calls as `<tool_call>` blocks that `decode(..., "tool_call_tags")` reads back
    (tuples come back as lists: JSON has no tuples)."""
    return format_calls([ToolCall(name=name, arguments=args) for name, args in _pairs(calls)], "tool_call_tags")


def encode_python(calls: list[dict]) -> str:
    """Decoded calls as BFCL's `[f(a=1), g(b='x')]`, which `decode(..., "python")` reads back.
    Raises ValueError for what has no such form: names that are not (dotted) identifiers,
    argument names that are Python keywords, non-finite floats, non-literal values."""
    rendered = []
    for name, args in _pairs(calls):
        if not all(part.isidentifier() and not keyword.iskeyword(part) for part in name.split(".")):
            raise ValueError(f"{name!r} cannot be written as a Python call")
        bad = [k for k in args if not (isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k))]
        if bad:
            raise ValueError(f"argument names {bad!r} cannot be Python keyword arguments")
        rendered.append(f"{name}({', '.join(f'{k}={_py_literal(v)}' for k, v in args.items())})")
    return "[" + ", ".join(rendered) + "]"


def _pairs(calls: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for call in calls:
        if not (isinstance(call, dict) and len(call) == 1):
            raise ValueError(f"a decoded call is a single-key dict, got {call!r:.80}")
        (name, args), = call.items()
        if not isinstance(args, dict):
            raise ValueError(f"arguments of {name!r} must be a dict")
        out.append((name, args))
    return out


def _py_literal(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} has no Python literal")
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_py_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_py_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py_literal(k)}: {_py_literal(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"cannot write {type(value).__name__} as a Python literal")


# ---------------------------------------------------------------------------------------------
# Oracle: a model output built from the ground truth


def oracle_calls(entry: Entry) -> list[dict]:
    """The answer a perfect model would give: each expected call with the first accepted value
    of every parameter, dicts taking the first accepted value of each key. A parameter whose
    first accepted value is "" (may be omitted) is left out unless the docs require it; then
    the first other accepted value is used (or "" itself when nothing else is accepted), as
    for simple_200. Parameters the docs do not declare are left out (parallel_multiple_26).
    Java/JavaScript values are written as literals of the declared type, so the checker's
    converters read them back. Used to test the checker end to end and to time it."""
    language = language_of(entry.category)
    by_doc = "parallel" in entry.category or "multiple" in entry.category
    calls = []
    for answer in entry.ground_truth or []:
        (name, accepted_params), = answer.items()
        doc = next(d for d in entry.functions if d["name"] == name) if by_doc else entry.functions[0]
        props = doc["parameters"].get("properties", {})
        required = doc["parameters"].get("required", [])
        args = {}
        for param, accepted in accepted_params.items():
            choices = [a for a in accepted if a != ""] or accepted[:1]
            if param not in props or not choices or (accepted[0] == "" and param not in required):
                continue
            spec = props[param]
            value = _first_choice(choices[0], spec)
            if language == "java":
                value = java_literal(value, spec)
            elif language == "javascript":
                value = js_literal(value, spec)
            args[param] = value
        calls.append({doc["name"]: args})
    return copy.deepcopy(calls)  # callers may edit it; the cached ground truth must not change


def _first_choice(option: Any, spec: dict) -> Any:
    """An accepted value with its per-key choices (dicts, lists of dicts) resolved."""
    def pick(choices: dict) -> dict:
        return {k: v[0] for k, v in choices.items() if isinstance(v, list) and v and v[0] != ""}

    if spec.get("type") in ("dict", "HashMap") and isinstance(option, dict):
        return pick(option)
    if spec.get("items", {}).get("type") == "dict" and isinstance(option, list):
        return [pick(item) if isinstance(item, dict) else item for item in option]
    return option
