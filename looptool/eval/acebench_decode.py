"""Model text -> ACEBench's decoded call list `[{api_name: {param: value}}, ...]`.

Two prompt formats, two readers:

* "acebench" (ACEBench's own prompt, answers such as `[ApiName(key='value'), Other(n=3)]`): read as
  ACEBench's eval_main.py and `model_inference/utils.py::ast_parse` read it (commit 56dd66cf):
  - single-turn Normal categories: the first balanced outermost `[...]` of the raw text is taken
    (brackets inside string literals count too, so `[f(a="]")]` is cut short and fails); text
    around it (prose, code fences, a `<think>` block) is ignored; no bracket -> failure;
  - multi-turn Normal categories: every whitespace character is deleted -- inside string
    literals too -- and the whole remaining text is parsed, so any prose, fence or `<think>`
    block fails;
  - the text is parsed as one Python expression whose body must have elements (a list; a tuple
    or set too, which only the multi-turn reading can produce) that are all calls; only keyword
    arguments count (positional ones are dropped); constants are literal, `-x` negates a
    number; lists and dicts recursively, tuples stay tuples; a bare name is its identifier as a
    string (`city=Paris` -> "Paris", `true`/`null` -> "true"/"null"); a call without keyword
    arguments inside a value reads as `{name: {}}`, one with keywords as `{name: {...}}`; a
    subscript as its source text.
* "tool_call" (the project's `<tool_call>` prompt): read by `looptool.calls.parse_calls`, the
  project's one reader of tool calls; plain text is "no call" (`[]`). No whitespace is deleted:
  that is an artefact of ACEBench's own text format, not of the matching.

Differences from the official reader, all for safety: nothing the model wrote is ever evaluated.
ACEBench `eval`s arithmetic (`BinOp`); here it is computed as Python would, but only over
literals (numbers, strings, booleans, None, lists, tuples, sets and dicts of them, and
subscripts of those: so `[1] + [2]` is [1, 2] and `True + 1` is 2, as there) and within size
limits; an operand that would need the model's code run (a name, a call, an attribute) fails
the entry. ACEBench's
reader crashes on lambdas, starred items and other expressions, which fails the entry as it
does there. Oddities kept for comparability: every unary operator negates (`+5` reads as -5, as
upstream), and whitespace deletion in multi-turn answers breaks strings with spaces (27 of the
multi-turn possible answers fail for it, see acebench_checker).

Decoding never raises on model text: failures come back as `Decoded(None, error_type, error)`.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any, Literal

from looptool.calls import MAX_CHARS, parse_calls
from looptool.eval.bfcl_decode import _MAX_INT_BITS, _MAX_STR, Decoded, _DecodeError

PromptFormat = Literal["acebench", "tool_call"]
PROMPT_FORMATS: tuple[str, ...] = ("acebench", "tool_call")
DECODE_FAILED = "wrong_output_format"  # ACEBench's error type for an unreadable answer

_MAX_DEPTH = 64


def decode(text: str, *, multi_turn: bool, fmt: PromptFormat = "acebench") -> Decoded:
    """Decode a Normal-category answer. Never raises for any text."""
    try:
        if not isinstance(text, str):
            return _failed(f"expected str, got {type(text).__name__}")
        if len(text) > MAX_CHARS:
            return _failed(f"output too long ({len(text)} chars > {MAX_CHARS})")
        if fmt == "tool_call":
            return _decode_tool_call(text)
        if fmt != "acebench":
            raise ValueError(f"unknown prompt format {fmt!r}; use one of {', '.join(PROMPT_FORMATS)}")
        body = "".join(text.split()) if multi_turn else outermost_brackets(text)
        if body is None:
            return _failed("no [...] in the answer")
        return Decoded(_parse_calls(body))
    except _DecodeError as exc:
        return _failed(str(exc))
    except (RecursionError, MemoryError):
        return _failed("output is nested too deeply to decode")


def outermost_brackets(text: str) -> str | None:
    """The first balanced outermost `[...]`, as eval_main.py's extract_outermost_bracket_content
    finds it (a stray `]` before any `[` drives the depth negative, as there)."""
    start, depth = -1, 0
    for i, char in enumerate(text):
        if char == "[":
            if depth == 0:
                start = i
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0 and start != -1:
                return text[start:i + 1]
    return None


def _failed(message: str) -> Decoded:
    return Decoded(None, DECODE_FAILED, message)


def _decode_tool_call(text: str) -> Decoded:
    result = parse_calls(text)
    if result.status == "error":
        return _failed(result.error or "unreadable tool call")
    return Decoded([{call.name: dict(call.arguments)} for call in result.calls])


def _parse_calls(body: str) -> list[dict]:
    try:
        tree = ast.parse(body, mode="eval").body
    except SyntaxError as exc:
        raise _DecodeError(f"Invalid syntax. Failed to decode AST. {exc.msg}") from None
    except ValueError as exc:  # e.g. NUL bytes
        raise _DecodeError(f"Invalid syntax. Failed to decode AST. {exc}") from None
    if not isinstance(tree, (ast.List, ast.Tuple, ast.Set)):  # upstream reads `.elts`
        raise _DecodeError(f"expected a list of calls, got a {type(tree).__name__} expression")
    calls = []
    for node in tree.elts:
        if not isinstance(node, ast.Call):
            raise _DecodeError(f"expected a function call, got a {type(node).__name__} expression")
        calls.append(_call(node, _MAX_DEPTH))
    return calls


def _name(node: ast.Call) -> str:
    parts = []
    target = node.func
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    return ".".join(reversed(parts))


def _call(node: ast.Call, depth: int) -> dict:
    """`a.f(x=1, 2)` -> {"a.f": {"x": 1}}: positional arguments are dropped, as upstream."""
    args = {}
    for kw in node.keywords:
        if kw.arg is None:  # upstream crashes on `**x` when it comes to check it
            raise _DecodeError("keyword unpacking (**) is not supported")
        args[kw.arg] = _value(kw.value, depth - 1)
    return {_name(node): args}


def _value(node: ast.expr, depth: int) -> Any:
    if depth < 0:
        raise _DecodeError(f"argument values nest deeper than {_MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):
        # Upstream: `-value.operand.value` whatever the operator (so `+5` is -5); a non-literal
        # operand or a string crashes there, which is a failure here.
        operand = node.operand
        if not (isinstance(operand, ast.Constant) and type(operand.value) in (int, float, bool, complex)):
            raise _DecodeError("a sign applies only to a number literal")
        return -operand.value
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
        return _computed(node, depth)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return _call(node, depth - 1) if node.keywords else {_name(node): {}}
    if isinstance(node, ast.Subscript):
        return f"{ast.unparse(node.value)}[{ast.unparse(node.slice)}]"
    raise _DecodeError(f"Unsupported AST type: {type(node).__name__}")


# Python's operators, for the arithmetic ACEBench's reader `eval`s.
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
           ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
           ast.BitXor: operator.xor, ast.BitAnd: operator.and_, ast.MatMult: operator.matmul}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: operator.not_}
# A %-format with a huge or `*` width or precision would build a huge string.
_HUGE_FORMAT = re.compile(r"%[^a-zA-Z%]*?(\*|\d{5,})")


def _computed(node: ast.expr, depth: int) -> Any:
    """What `eval` gives for an expression made of literals only, within size limits. Unlike a
    value on its own, an operand here means what it means in Python (`+5` is 5, `(1, 2)` a tuple)."""
    if depth < 0:
        raise _DecodeError(f"arithmetic nests deeper than {_MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_computed(item, depth - 1) for item in node.elts]
        return _apply({ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)], items)
    if isinstance(node, ast.Dict) and all(key is not None for key in node.keys):
        pairs = [(_computed(k, depth - 1), _computed(v, depth - 1)) for k, v in zip(node.keys, node.values)]
        return _apply(dict, pairs)
    if isinstance(node, ast.UnaryOp):
        return _apply(_UNARY[type(node.op)], _computed(node.operand, depth - 1))
    if isinstance(node, ast.BinOp):
        left, right = _computed(node.left, depth - 1), _computed(node.right, depth - 1)
        _check_size(node.op, left, right)
        return _apply(_BINARY[type(node.op)], left, right)
    if isinstance(node, ast.Subscript):  # `[1, 2][0] + 1`
        return _apply(operator.getitem, _computed(node.value, depth - 1), _computed(node.slice, depth - 1))
    if isinstance(node, ast.Slice):
        return slice(*(None if part is None else _computed(part, depth - 1)
                       for part in (node.lower, node.upper, node.step)))
    raise _DecodeError(f"only arithmetic on literals is computed, not {ast.unparse(node)[:60]!r}")


def _check_size(op: ast.operator, left: Any, right: Any) -> None:
    """Refuse what would take too long or too much memory before computing it."""
    numbers = (int, float, complex)
    if isinstance(op, ast.Pow) and isinstance(right, numbers) and abs(right) > 1024:
        raise _DecodeError("exponent too large")
    if isinstance(op, ast.LShift) and isinstance(right, int) and right > _MAX_INT_BITS:
        raise _DecodeError("shift too large")
    if isinstance(op, ast.Mult):
        sequence, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(count, int) \
                and count * len(sequence) > _MAX_STR:
            raise _DecodeError("repeated sequence too long")
    if isinstance(op, ast.Mod) and isinstance(left, (str, bytes)):
        text = left if isinstance(left, str) else left.decode("latin-1")
        if _HUGE_FORMAT.search(text):
            raise _DecodeError("format width too large")


def _apply(function: Any, *operands: Any) -> Any:
    try:
        result = function(*operands)
    except (ArithmeticError, LookupError, TypeError, ValueError, MemoryError) as exc:  # as `eval` fails there
        raise _DecodeError(f"cannot compute the expression: {exc}") from None
    if isinstance(result, int) and result.bit_length() > _MAX_INT_BITS:
        raise _DecodeError("arithmetic result too large")
    if isinstance(result, (str, bytes, list, tuple)) and len(result) > _MAX_STR:
        raise _DecodeError("arithmetic result too long")
    return result
