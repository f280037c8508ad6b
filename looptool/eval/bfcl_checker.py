"""The BFCL-v3 AST checker: is a decoded model output an accepted answer to a BFCL entry?

This reimplements the official single-turn checker (gorilla `bfcl_eval/eval_checker/ast_eval/
ast_checker.py`, its Java/JavaScript type converters and the relevance runner, as of BFCL v3) so
that scores computed here can be compared with published BFCL-v3 numbers. Its rules, quirks
included, are kept on purpose:

* Dispatch by category name: "parallel" in it -> every expected call must be matched by a
  distinct model call, in any order; else "multiple" -> exactly as many calls as expected, the
  first checked against the expected function; else simple -> exactly one call.
* A call passes when it names the function's documented name, passes every required parameter,
  passes no parameter absent from the docs or the possible answer, gives each parameter the
  documented type (an int is accepted for a top-level float, never inside a list; a tuple only
  where the doc says tuple; bool is not int), and each value is among the accepted ones.
  Strings compare after `standardize_string` (drop ` ,./-_*^`, lowercase, ' -> "); lists
  compare whole and in order; dicts key by key, one level deep; omitted parameters must list
  "" among their accepted values.
* The "variable" escape: when the possible answer's values have another type than the doc's
  (a variable name such as "mapController" for an object parameter), a value of the answer's
  type is accepted and compared as a plain value.
* Java and JavaScript values must be strings holding Java/JS literals; they are converted by
  the doc's declared type, exactly like the official converters, regex quirks included. For
  example `new String[]{"a", "b"}` for a Java `Array` of `String` keeps the quotes around each
  element (the official `parse_array` does), and an `ArrayList` of `any` yields strings only,
  so java_36 and java_65 (whose answers hold numbers and booleans) cannot be passed by any
  output, here as in the official checker.
* irrelevance / live_irrelevance pass iff the output holds no call (not decodable, `[]`, or
  not in call format); live_relevance passes iff it holds one, whatever its arguments.

Deliberate differences, all invisible on the shipped data:

* Function names are compared as written, dots included. The official checker replaces dots
  by underscores for providers whose APIs forbid dots (`underscore_to_dot`); our decoders
  return the names the model wrote, and the tool schemas this project sends keep the dots.
* `parallel_matching="bipartite"` (opt-in; the default "greedy" reproduces official numbers)
  accepts a parallel answer whenever *some* one-to-one assignment of model calls to expected
  calls passes. The official matcher walks the expected calls in order and lets each take the
  first unused model call that passes, so it can reject a correct answer: in parallel_178 the
  first expected call accepts "Microsoft" or "Apple", and a model that lists Apple first
  loses the Apple call to it and fails.
* Where the official code would crash on malformed ground truth or docs (an unknown type name,
  a Java `Set`, an accepted value of the wrong shape), this one raises ValueError for doc
  problems and treats a malformed accepted value as not matching. None of it occurs in the
  shipped data.

The Java/JavaScript converters live in `looptool.eval.bfcl_literals`. `calls_match_bfcl` judges
predicted calls against expected calls (without an entry) with these rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from looptool.eval.bfcl_data import NO_GROUND_TRUTH, Entry, Language, language_of
from looptool.eval.bfcl_literals import JAVA_TYPES, JS_TYPES, java_to_python, js_to_python
from looptool.schema import ToolCall

ParallelMatching = Literal["greedy", "bipartite"]

PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_PYTHON_NESTED = ("array", "tuple")  # Python types whose items are type-checked (one level)
_CONVERTED_NESTED = ("Array", "ArrayList", "array")  # Java/JS types converted with an item type

_MESSAGE_LIMIT = 400


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one entry. `error_type` uses the official names (for example
    "type_error:simple" or "parallel_function_checker_no_order:cannot_find_match"), so error
    breakdowns can be compared with BFCL's score files; `error` is one line for humans."""

    valid: bool
    error_type: str | None = None
    error: str | None = None


class _Mismatch(Exception):
    """Internal: why a call does not pass, carried up to `check`."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _fail(error_type: str, message: str) -> CheckResult:
    return CheckResult(False, error_type, " ".join(message.split())[:_MESSAGE_LIMIT])


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Entry point


def check(
    entry: Entry, decoded: list[dict] | None, *, parallel_matching: ParallelMatching = "greedy"
) -> CheckResult:
    """Score one decoded output (`[{func_name: {param: value}}, ...]`, or None when the output
    could not be decoded) against an entry, with the official BFCL-v3 rules."""
    if parallel_matching not in ("greedy", "bipartite"):
        raise ValueError(f"parallel_matching must be 'greedy' or 'bipartite', got {parallel_matching!r}")
    if entry.category in NO_GROUND_TRUTH:
        return _check_relevance(entry.category, decoded)
    if entry.ground_truth is None:
        raise ValueError(f"entry {entry.id!r} has no ground truth")
    if decoded is None:
        return _fail("ast_decoder:decoder_failed", "the output could not be decoded into calls")
    if not is_call_format(decoded):
        return _fail(
            "ast_decoder:decoder_wrong_output_format",
            f"expected a list of {{function: {{param: value}}}} dicts, got {_short(decoded)}",
        )
    language = language_of(entry.category)
    try:
        if "parallel" in entry.category:
            _check_parallel(entry, decoded, language, parallel_matching)
        elif "multiple" in entry.category:
            _check_multiple(entry, decoded, language)
        else:
            _check_simple(entry, decoded, language)
    except _Mismatch as mismatch:
        return _fail(mismatch.error_type, mismatch.message)
    return CheckResult(True)


def is_call_format(decoded: Any) -> bool:
    """BFCL's `is_function_calling_format_output`: a list of single-key dicts whose value is a
    dict of arguments (`[]` included)."""
    if type(decoded) is not list:
        return False
    return all(type(c) is dict and len(c) == 1 and type(next(iter(c.values()))) is dict for c in decoded)


def has_call(decoded: list[dict] | None) -> bool:
    """Does the output hold a function call, as the relevance runner counts them? An output
    that failed to decode, `[]`, and anything not in call format hold none."""
    return decoded is not None and is_call_format(decoded) and len(decoded) > 0


def _check_relevance(category: str, decoded: list[dict] | None) -> CheckResult:
    called = has_call(decoded)
    if "irrelevance" in category:
        if not called:
            return CheckResult(True)
        names = [next(iter(c)) for c in decoded]  # type: ignore[union-attr]
        return _fail("irrelevance_error:decoder_success", f"expected no call, got {len(names)}: {_short(names)}")
    if called:
        return CheckResult(True)
    return _fail("relevance_error:decoder_failed", f"expected a function call, got {_short(decoded)}")


def _check_simple(entry: Entry, decoded: list[dict], language: Language) -> None:
    if len(decoded) != 1:
        raise _Mismatch("simple_function_checker:wrong_count", f"expected 1 call, got {len(decoded)}")
    _check_call(entry.functions[0], decoded[0], entry.ground_truth[0], language)  # type: ignore[index]


def _check_multiple(entry: Entry, decoded: list[dict], language: Language) -> None:
    expected = entry.ground_truth or []
    if len(decoded) != len(expected):
        raise _Mismatch(
            "multiple_function_checker:wrong_count", f"expected {len(expected)} call(s), got {len(decoded)}"
        )
    _check_call(_doc_for(entry, expected[0]), decoded[0], expected[0], language)


def _check_parallel(entry: Entry, decoded: list[dict], language: Language, matching: ParallelMatching) -> None:
    expected = entry.ground_truth or []
    if len(decoded) != len(expected):
        raise _Mismatch(
            "parallel_function_checker_no_order:wrong_count",
            f"expected {len(expected)} call(s), got {len(decoded)}",
        )
    docs = [_doc_for(entry, answer) for answer in expected]
    if matching == "greedy":
        _match_greedy(docs, decoded, expected, language)
    else:
        _match_bipartite(docs, decoded, expected, language)


def _match_greedy(docs: list[dict], decoded: list[dict], expected: list[dict], language: Language) -> None:
    """The official matcher: each expected call, in order, takes the first unused model call
    that passes."""
    used: set[int] = set()
    for i, (doc, answer) in enumerate(zip(docs, expected)):
        reasons = []
        for j, call in enumerate(decoded):
            if j in used:
                continue
            try:
                _check_call(doc, call, answer, language)
            except _Mismatch as mismatch:
                reasons.append(f"call {j}: {mismatch.error_type}: {mismatch.message}")
                continue
            used.add(j)
            break
        else:
            free = [j for j in range(len(decoded)) if j not in used]
            raise _Mismatch(
                "parallel_function_checker_no_order:cannot_find_match",
                f"no call among {free} matches expected call {i} ({doc['name']}); " + "; ".join(reasons),
            )


def _match_bipartite(docs: list[dict], decoded: list[dict], expected: list[dict], language: Language) -> None:
    """Opt-in: pass when any one-to-one assignment of model calls to expected calls passes."""
    passes = [[_passes(doc, call, answer, language) for call in decoded] for doc, answer in zip(docs, expected)]
    assignment = max_matching(passes)
    unmatched = [i for i in range(len(expected)) if i not in assignment]
    if unmatched:
        candidates = {i: [j for j, ok in enumerate(passes[i]) if ok] for i in unmatched}
        raise _Mismatch(
            "parallel_function_checker_no_order:cannot_find_match",
            f"no one-to-one assignment covers expected call(s) {unmatched}; "
            f"model calls passing each: {candidates}",
        )


def max_matching(passes: list[list[bool]]) -> dict[int, int]:
    """A maximum bipartite matching of rows to columns over a pass/fail matrix, by augmenting
    paths (Kuhn's algorithm; the matrices here are a few calls wide). Returns {row: column}."""
    owner: dict[int, int] = {}  # column -> row

    def augment(row: int, seen: set[int]) -> bool:
        for col, ok in enumerate(passes[row]):
            if ok and col not in seen:
                seen.add(col)
                if col not in owner or augment(owner[col], seen):
                    owner[col] = row
                    return True
        return False

    for row in range(len(passes)):
        augment(row, set())
    return {row: col for col, row in owner.items()}


def _passes(doc: dict, call: dict, answer: dict, language: Language) -> bool:
    try:
        _check_call(doc, call, answer, language)
    except _Mismatch:
        return False
    return True


def _doc_for(entry: Entry, answer: dict) -> dict:
    """The function doc an expected call refers to (multiple/parallel look it up by name)."""
    name = next(iter(answer))
    for doc in entry.functions:
        if doc["name"] == name:
            return doc
    raise ValueError(f"{entry.id}: ground truth calls {name!r}, which the entry does not offer")


# ---------------------------------------------------------------------------------------------
# One call


def _check_call(doc: dict, call: dict, answer: dict, language: Language) -> None:
    """BFCL's simple_function_checker: one model call against one expected call."""
    accepted_params: dict[str, list] = next(iter(answer.values()))
    name = doc["name"]
    if name not in call:
        raise _Mismatch(
            "simple_function_checker:wrong_func_name", f"expected function {name!r}, got {_short(next(iter(call)))}"
        )
    args = call[name]
    props = doc["parameters"].get("properties", {})
    for param in doc["parameters"].get("required", []):
        if param not in args:
            raise _Mismatch("simple_function_checker:missing_required", f"missing required parameter {param!r}")
    for param, value in args.items():
        if param not in props or param not in accepted_params:
            raise _Mismatch("simple_function_checker:unexpected_param", f"unexpected parameter {_short(param)}")
        _check_param(param, value, props[param], accepted_params[param], language)
    for param, accepted in accepted_params.items():
        if param not in args and "" not in accepted:
            raise _Mismatch(
                "simple_function_checker:missing_optional",
                f"parameter {param!r} omitted but it is not optional (accepted: {_short(accepted)})",
            )


def _check_param(param: str, value: Any, spec: dict, accepted: list, language: Language) -> None:
    """Convert (Java/JS), type-check and value-check one argument."""
    type_name = spec.get("type")
    if language == "python":
        expected, nested = _python_types(type_name, spec)
    else:
        if language == "java":
            table, convert, tag = JAVA_TYPES, java_to_python, "java"
        else:
            table, convert, tag = JS_TYPES, js_to_python, "js"
        if type_name not in table:
            raise ValueError(f"unsupported {language} type {type_name!r} for parameter {param!r}")
        expected, nested = table[type_name], None
        if type(value) is not str:
            raise _Mismatch(
                f"type_error:{tag}",
                f"parameter {param!r} must be a {language} literal in a string, "
                f"got {type(value).__name__} {_short(value)}",
            )
        if type_name in _CONVERTED_NESTED:
            item_type = spec.get("items", {}).get("type")
            if item_type not in table:
                raise ValueError(f"unsupported {language} item type {item_type!r} for parameter {param!r}")
            nested = table[item_type]
            value = convert(value, type_name, item_type)
        else:
            value = convert(value, type_name)
    if type_name == "tuple" and type(value) is tuple:
        value = list(value)  # answers went through JSON, which has no tuples
    if language == "python" and type_name == "float" and type(value) is int:
        value = float(value)
    _check_value(param, value, accepted, type_name, expected, nested)


def _python_types(type_name: Any, spec: dict) -> tuple[type, type | None]:
    if type_name not in PYTHON_TYPES:
        raise ValueError(f"unsupported parameter type {type_name!r}")
    nested = None
    if type_name in _PYTHON_NESTED:
        item_type = spec.get("items", {}).get("type")
        if item_type not in PYTHON_TYPES:
            raise ValueError(f"unsupported item type {item_type!r}")
        nested = PYTHON_TYPES[item_type]
    return PYTHON_TYPES[type_name], nested


def _check_value(param: str, value: Any, accepted: list, type_name: str, expected: type, nested: type | None) -> None:
    """The type check, then the value check by kind (dict, list of dicts, string, list, other)."""
    is_variable = _check_type(param, value, accepted, type_name, expected, nested)
    if not is_variable:
        if expected is dict:
            return _check_dict(param, value, accepted)
        if expected is list and nested is dict:
            return _check_list_of_dicts(param, value, accepted)
        if expected is str:
            return _check_string(param, value, accepted)
        if expected is list:
            return _check_list(param, value, accepted)
    if value not in accepted:
        raise _Mismatch("value_error:others", f"{param!r}: {_short(value)} is not one of {_short(accepted)}")


def _answer_type(accepted: list) -> type | None:
    """The type of the first accepted value that is not the "may be omitted" marker."""
    for option in accepted:
        if option != "":
            return type(option)
    return None


def _check_type(param: str, value: Any, accepted: list, type_name: str, expected: type, nested: type | None) -> bool:
    """BFCL's type_checker. Returns whether the value is a "variable": the possible answer's
    type differs from the doc's, so the value is then compared as a plain value."""
    answer_type = _answer_type(accepted)
    is_variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if nested is None:
            return is_variable
        # One level of item checks: some accepted list (or any accepted non-list) must agree
        # with the type of every item.
        for option in accepted:
            if type(option) is not list or all(_item_type_ok(item, option, nested) for item in value):
                return is_variable
        # The official code records the nested error and then falls through to the variable
        # check, which keeps it only when the value has the answer's type.
        error_type = "type_error:nested" if type(value) is answer_type else "type_error:simple"
        raise _Mismatch(
            error_type,
            f"{param!r}: items of {_short(value)} must be {nested.__name__} ({type_name} of {nested.__name__})",
        )
    if answer_type is not None and type(value) is answer_type:
        return True
    raise _Mismatch(
        "type_error:simple", f"{param!r}: expected {type_name}, got {type(value).__name__} {_short(value)}"
    )


def _item_type_ok(item: Any, option: list, nested: type) -> bool:
    if type(item) is nested:
        return True
    answer_type = _answer_type(option)
    return answer_type is not None and type(item) is answer_type


_STANDARDIZE = re.compile(r"[ ,./\-_*^]")


def standardize_string(text: str) -> str:
    """BFCL's string normalisation: "April 1, 2024" and "april 1 2024" are the same answer."""
    return _STANDARDIZE.sub("", text).lower().replace("'", '"')


def _std(value: Any) -> Any:
    return standardize_string(value) if type(value) is str else value


def _check_string(param: str, value: str, accepted: list) -> None:
    if standardize_string(value) not in [standardize_string(a) for a in accepted if type(a) is str]:
        raise _Mismatch(
            "value_error:string", f"{param!r}: {_short(value)} is not one of {_short(accepted)} (case-insensitive)"
        )


def _check_list(param: str, value: list, accepted: list) -> None:
    options = [[_std(x) for x in option] for option in accepted if isinstance(option, (list, tuple, str))]
    if [_std(x) for x in value] not in options:
        raise _Mismatch("value_error:list/tuple", f"{param!r}: {_short(value)} is not one of {_short(accepted)}")


def _check_dict(param: str, value: dict, accepted: list) -> None:
    error = _Mismatch("dict_checker:unclear", f"{param!r}: no accepted dict value")
    for option in accepted:
        if option == "":
            continue
        problem = _dict_problem(value, option)
        if problem is None:
            return
        error = problem
    raise error


def _dict_problem(value: Any, option: Any) -> _Mismatch | None:
    """Why a model dict does not match one accepted dict ({key: [accepted values]}), or None."""
    if not isinstance(value, dict) or not isinstance(option, dict):
        return _Mismatch("value_error:dict_value", f"{_short(value)} does not match {_short(option)}")
    problem = None
    for key, item in value.items():
        if key not in option:
            problem = _Mismatch("value_error:dict_key", f"unexpected dict key {_short(key)}")
            break
        choices = option[key] if isinstance(option[key], (list, tuple, str)) else []
        if _std(item) not in [_std(c) for c in choices]:
            problem = _Mismatch(
                "value_error:dict_value", f"dict key {key!r}: {_short(item)} is not one of {_short(option[key])}"
            )
            break
    # The official code runs this second pass even after a bad value, and its verdict wins.
    for key, choices in option.items():
        if key not in value and "" not in choices:
            return _Mismatch("value_error:dict_key", f"missing dict key {key!r}")
    return problem


def _check_list_of_dicts(param: str, value: list, accepted: list) -> None:
    error = _Mismatch("list_dict_checker:unclear", f"{param!r}: no accepted list of dicts")
    for option in accepted:
        if not hasattr(option, "__len__") or len(value) != len(option):
            error = _Mismatch("value_error:list_dict_count", f"{param!r}: wrong number of dicts in {_short(value)}")
            continue
        for item, expected_item in zip(value, option):
            problem = _dict_problem(item, expected_item) if expected_item != "" else _Mismatch(
                "dict_checker:unclear", f"{param!r}: no accepted dict value"
            )
            if problem is not None:
                error = problem
                break
        else:
            return
    raise error


# ---------------------------------------------------------------------------------------------
# Calls against calls, with BFCL's rules


def calls_match_bfcl(predicted: list[ToolCall], expected: list[ToolCall]) -> bool:
    """Predicted calls against expected calls, judged like BFCL judges an answer.

    Each expected argument value is the single accepted value; its Python type stands in for
    the doc type (so an int passes for a top-level float, strings compare standardised, lists
    in order, dicts key by key). Both sides must name the same arguments: with no docs there
    is no notion of an optional parameter. Calls match as a multiset, in any order (a full
    assignment, not the greedy one).
    """
    if len(predicted) != len(expected):
        return False
    passes = [[_tool_call_passes(p, e) for p in predicted] for e in expected]
    return len(max_matching(passes)) == len(expected)


def _tool_call_passes(predicted: ToolCall, expected: ToolCall) -> bool:
    if predicted.name != expected.name or set(predicted.arguments) != set(expected.arguments):
        return False
    try:
        for param, want in expected.arguments.items():
            type_name, py_type, nested = _types_of(want)
            value = predicted.arguments[param]
            if type_name == "float" and type(value) is int:
                value = float(value)
            _check_value(param, value, [_as_accepted(want)], type_name, py_type, nested)
    except _Mismatch:
        return False
    return True


_VALUE_TYPES = {str: "string", bool: "boolean", int: "integer", float: "float", dict: "dict", list: "array"}


def _types_of(value: Any) -> tuple[str, type, type | None]:
    """BFCL type of an expected value; lists get an item type only when their items agree."""
    if value is None:
        return "any", str, None  # None passes only as itself, through the variable escape
    type_name = _VALUE_TYPES.get(type(value), "any")
    py_type = PYTHON_TYPES[type_name]
    nested = None
    if py_type is list and value:
        item_types = {type(item) for item in value}
        nested = item_types.pop() if len(item_types) == 1 else None
    return type_name, py_type, nested


def _as_accepted(value: Any) -> Any:
    """An expected value in possible-answer form: dicts (also inside lists) hold lists of
    accepted values per key."""
    if isinstance(value, dict):
        return {k: [v] for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [{k: [v] for k, v in item.items()} for item in value]
    return value

