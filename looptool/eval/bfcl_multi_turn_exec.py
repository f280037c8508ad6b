"""Run tool calls against BFCL's backends the way BFCL's multi-turn executor does, without `eval`.

BFCL's executor (`execute_multi_turn_func_call`) turns each call into a string such as
`cd(folder='document')`, prefixes the method's instance and `eval`s it. Here a call is a name and
its arguments, and the bound method is called directly; model text is never executed. What BFCL's
executor decides is kept, because the checker compares its result strings exactly:

* the method table: every public method of every involved instance, a later class winning a name
  that two classes share;
* names BFCL refuses before evaluating (`kill`, `exit`, `quit`, `remove`, `unlink`, `popen`,
  `Popen`, `run`) give "Error during execution: Function call NAME is not allowed.";
* an unknown name gives "Error during execution: name 'NAME' is not defined" (the NameError
  `eval` raises); so does a dotted name, by its first part. BFCL would reach a Python builtin
  or module of its own namespace this way (`print`, `json.dumps`); here nothing is reached;
* any exception, also one raised while turning the result into a string, becomes
  "Error during execution: <message>"; a result becomes a string: a str as is, a dict as
  `json.dumps` (or `str` when not serialisable), anything else `str`.

Two guards keep one absurd call from stalling a whole scoring run, where BFCL would compute for
minutes or hours: MathAPI's `power` of integers whose result has more digits than Python will
print gets the error BFCL ends with anyway ("Exceeds the limit (4300 digits) ..."), without the
computation; `logarithm` and `square_root` asked for more than MAX_PRECISION digits get an error
of their own. MathAPI's changes to mpmath's and `decimal`'s global precision are undone after
each call, so they do not leak into the rest of the process.

One known difference: BFCL's prefixing is a regex over the whole call string, so a method name
followed by "(" inside a string argument gets prefixed too (`echo(content='ls()')` writes
"<instance>.ls()"). Arguments here reach the method unchanged.

The ground truth is BFCL's own Python call strings and may use positional arguments; they are read
with `ast` (literal values only) and bound to parameter names with the method's signature.

`BackendSession` is the API the scorer and an inference loop share: fresh instances for an entry,
then `execute(call)` -> the result string the model would be shown.
"""

from __future__ import annotations

import ast
import copy
import decimal
import inspect
import json
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

import mpmath

from looptool.eval.bfcl_backends import new_instance, reset_shared_fixtures
from looptool.eval.bfcl_multi_turn_data import MultiTurnEntry
from looptool.schema import ToolCall

ERROR_PREFIX = "Error during execution: "
REFUSED_NAMES = frozenset({"kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run"})
MAX_PRECISION = 10_000  # digits MathAPI's logarithm and square_root may be asked for


class GroundTruthError(ValueError):
    """A ground-truth call string that is not a plain call with literal arguments (a data bug)."""


class BackendSession:
    """Fresh instances of one entry's involved classes, living across all of its turns.

    `reset_fixtures=False` lets a second session of the same entry share the long-context
    fixtures with the first, as BFCL's model and ground-truth instances do when an entry is scored.
    The fixtures are per process: long-context sessions alive at the same time (an inference loop
    running entries concurrently) share them, as in BFCL's threaded inference. Scoring is not
    affected, since `check_multi_turn` replays an answer from fresh sessions.
    """

    def __init__(self, entry: MultiTurnEntry, *, reset_fixtures: bool = True):
        if reset_fixtures and entry.long_context:
            reset_shared_fixtures()
        self.entry_id = entry.id
        self.instances: dict[str, Any] = {
            name: new_instance(name, entry.initial_config, entry.long_context) for name in entry.involved_classes}
        self.methods: dict[str, Callable[..., Any]] = {}
        for instance in self.instances.values():
            for name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not name.startswith("_"):
                    self.methods[name] = method

    def execute(self, call: ToolCall) -> str:
        """Run one call; the result string BFCL's executor gives (errors included, never raises)."""
        return self._run(call.name, (), call.arguments)

    def execute_all(self, calls: Iterable[ToolCall]) -> list[str]:
        return [self.execute(call) for call in calls]

    def execute_ground_truth(self, text: str) -> str:
        """Run one ground-truth call string, positional arguments passed positionally as BFCL does."""
        name, args, kwargs = parse_ground_truth_call(text)
        return self._run(name, args, kwargs)

    def _run(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if name in REFUSED_NAMES:
            return f"{ERROR_PREFIX}Function call {name} is not allowed."
        method = self.methods.get(name)
        if method is None:
            return f"{ERROR_PREFIX}name {name.split('.')[0]!r} is not defined"
        refused = _runaway(name, kwargs)
        if refused is not None:
            return f"{ERROR_PREFIX}{refused}"
        # Fresh argument objects for every call, as `eval` of a call string makes: a backend that
        # stores a list it was given must not share it with the caller.
        args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
        digits, context = mpmath.mp.dps, decimal.getcontext().prec  # MathAPI sets both globally
        try:
            return result_string(method(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - BFCL reports every exception as a result string
            return f"{ERROR_PREFIX}{exc}"
        finally:
            mpmath.mp.dps, decimal.getcontext().prec = digits, context

    def public_state(self, class_name: str) -> dict[str, Any]:
        """The attributes the state check compares: every one whose name does not start with "_"."""
        return {k: v for k, v in vars(self.instances[class_name]).items() if not k.startswith("_")}


def _runaway(name: str, kwargs: dict[str, Any]) -> str | None:
    """The error for a call that would compute for too long (see the module docstring), else None."""
    if name == "power":
        base, exponent = kwargs.get("base"), kwargs.get("exponent")
        if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
            limit = sys.get_int_max_str_digits()
            if limit and exponent * math.log10(abs(base)) > limit + 1:
                return (f"Exceeds the limit ({limit} digits) for integer string conversion; use "
                        f"sys.set_int_max_str_digits() to increase the limit")
    if name in ("logarithm", "square_root"):
        precision = kwargs.get("precision")
        if _is_int(precision) and precision > MAX_PRECISION:
            return f"precision {precision} is above the {MAX_PRECISION} digits this scorer computes"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def result_string(result: Any) -> str:
    """A method's return value as BFCL's executor records it."""
    if type(result) is str:
        return result
    if type(result) is dict:
        try:
            return json.dumps(result)
        except Exception:  # noqa: BLE001 - e.g. an object inside; BFCL falls back to str
            return str(result)
    return str(result)


# -- ground truth -----------------------------------------------------------------------------------


def parse_ground_truth_call(text: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """`sort('final_report.pdf')` -> ("sort", ("final_report.pdf",), {}); literals only."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            raise ValueError("not a call of a plain name")
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
        if len(kwargs) != len(node.keywords):
            raise ValueError("**kwargs")
    except (SyntaxError, ValueError) as exc:
        raise GroundTruthError(f"ground-truth call {text!r:.120} is not a plain call with literal arguments: "
                               f"{exc}") from None
    return node.func.id, args, kwargs


def ground_truth_call(session: BackendSession, text: str) -> ToolCall:
    """A ground-truth call string as a keyword-only call (positional arguments named by the
    method's signature), the form a model's `<tool_call>` takes."""
    name, args, kwargs = parse_ground_truth_call(text)
    method = session.methods.get(name)
    if method is None:
        raise GroundTruthError(f"{session.entry_id}: ground-truth call {text!r:.120} names no method of the "
                               f"entry's classes")
    try:
        bound = inspect.signature(method).bind(*args, **kwargs)
    except TypeError as exc:
        raise GroundTruthError(f"{session.entry_id}: ground-truth call {text!r:.120} does not fit "
                               f"{name}(): {exc}") from None
    return ToolCall(name=name, arguments=dict(bound.arguments))
