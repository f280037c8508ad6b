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

Importing this module also registers the "bfcl" comparison mode of `looptool.calls`, which
judges predicted calls against expected calls with these rules (see `calls_match_bfcl`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from looptool.calls import register_matcher
from looptool.eval.bfcl_data import NO_GROUND_TRUTH, Entry, Language, language_of
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
JAVA_TYPES: dict[str, type] = {
    "byte": int,
    "short": int,
    "integer": int,
    "float": float,
    "double": float,
    "long": int,
    "boolean": bool,
    "char": str,
    "Array": list,
    "ArrayList": list,
    "Set": set,
    "HashMap": dict,
    "Hashtable": dict,
    "Queue": list,
    "Stack": list,
    "String": str,
    "any": str,
}
JS_TYPES: dict[str, type] = {
    "String": str,
    "integer": int,
    "float": float,
    "Bigint": int,
    "Boolean": bool,
    "dict": dict,
    "array": list,
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
# Java and JavaScript literals -> Python values (ports of the official type converters)
#
# A literal that does not parse as the declared type comes back unchanged as a string, so it
# then fails the type check (or passes as a "variable" when the answer is a variable name).

_INT = re.compile(r"^-?\d+$")
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_JAVA_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_JAVA_LONG = re.compile(r"^-?\d+[lL]$")
_JAVA_CHAR = re.compile(r"^\'.$\'")  # as in the official converter; it can never match
_JAVA_EMPTY_LIST = re.compile(r"new\s+ArrayList<\w*>\(\)")
# The official converter reads collections with these patterns (Python's `re`, searched):
#   ArrayList    new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)
#   add block    new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}  (DOTALL), then add\((.+?)\) (findall)
#   array        new\s+\w+\[\]\s*\{(.*?)\}
#   HashMap      new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}  (DOTALL), then
#                put\(\"(.*?)\",\s*(.*?)\)  (findall); empty: new\s+HashMap<.*?>\s*\(\)
# Each lazy group scans to the end of the line (or text) from every start that fails, so an
# answer repeating a start without its end took minutes. Below, only the fixed prefixes are
# regexes; where each lazy group ends is looked up in tables built in one pass (as for the
# JavaScript patterns), so the matches are the same and the time is linear (tests compare).
_JAVA_AS_LIST_START = re.compile(r"new\s+ArrayList<\w*>\(Arrays\.asList\(")
_JAVA_ADD_BLOCK_START = re.compile(r"new\s+ArrayList<\w*>\(\)\s*\{\{")
_JAVA_ARRAY_START = re.compile(r"new\s+\w+\[\]\s*\{")
_JAVA_MAP_START = re.compile(r"new\s+HashMap<")


def java_to_python(value: str, type_name: str, item_type: str | None = None) -> Any:
    """A Java literal as the Python value BFCL compares, by the declared Java type:
    "10L" (long) -> 10, "3.5f" (float) -> 3.5, "true" (boolean) -> True,
    'new ArrayList<>(Arrays.asList("a", "b"))' (ArrayList of String) -> ["a", "b"],
    'new HashMap<String, Object>() {{ put("k", 1); }}' -> {"k": 1}."""
    if type_name not in JAVA_TYPES:
        raise ValueError(f"unsupported Java type {type_name!r}")
    if type_name in ("byte", "short", "integer"):
        return int(value) if _INT.match(value) else str(value)
    if type_name == "float":
        return float(re.sub(r"[fF]$", "", value)) if _JAVA_FLOAT.match(value) else str(value)
    if type_name == "double":
        return float(value) if _JAVA_DOUBLE.match(value) else str(value)
    if type_name == "long":
        return int(re.sub(r"[lL]$", "", value)) if _JAVA_LONG.match(value) else str(value)
    if type_name == "boolean":
        return value == "true" if value in ("true", "false") else str(value)
    if type_name == "char":
        return value if _JAVA_CHAR.match(value) else str(value)
    if type_name == "ArrayList":
        return _java_arraylist(value, item_type)
    if type_name == "Array":
        return _java_array(value, item_type)
    if type_name == "HashMap":
        return _java_hashmap(value)
    if type_name in ("String", "any"):
        return str(value)
    raise ValueError(f"conversion of Java type {type_name!r} is not implemented (nor is it officially)")


def _java_element(text: str, item_type: str | None) -> Any:
    if item_type in ("char", "String"):
        return text[1:-1]  # drop the quotes
    return java_to_python(text, item_type) if item_type else _java_value(text)


def _java_arraylist(text: str, item_type: str | None) -> Any:
    if (items := _java_as_list(text)) is not None:
        return [_java_element(part.strip(), item_type) for part in items.split(",")]
    if (block := _java_add_block(text)) is not None:
        return [_java_element(part.strip(), item_type) for part in _java_adds(block)]
    if _JAVA_EMPTY_LIST.search(text):
        return []
    return text


def _java_array(text: str, item_type: str | None) -> Any:
    body = _java_array_body(text)
    if body is None:
        return text
    parts = [part.strip() for part in body.split(",") if part.strip()]
    # Unlike ArrayList elements, array elements keep their quotes (official behaviour).
    return [java_to_python(part, item_type) if item_type else _java_value(part) for part in parts]


def _java_hashmap(text: str) -> Any:
    if (body := _java_map_body(text)) is not None:
        return {key: _java_value(raw.strip()) for key, raw in _java_puts(body)} if body.strip() else {}
    if _java_empty_map(text):
        return {}
    return text


def _java_as_list(text: str) -> str | None:
    """The group of the official ArrayList pattern's search: `.+?` up to the first `))`, on
    one line."""
    n = len(text)
    pair = [n] * (n + 1)  # pair[i]: first j >= i with text[j:j+2] == "))", no newline in text[i:j]
    for i in range(n - 1, -1, -1):
        pair[i] = i if text.startswith("))", i) else n if text[i] == "\n" else pair[i + 1]
    for start in _JAVA_AS_LIST_START.finditer(text):
        g = start.end()
        if g < n and text[g] != "\n" and pair[g + 1] < n:
            return text[g : pair[g + 1]]
    return None


def _java_add_block(text: str) -> str | None:
    """The group of the official add-block pattern's search (DOTALL): after `{{` and spaces,
    `.+?` up to the first place where spaces and `}}` follow."""
    n = len(text)
    space = _space_end(text)
    closes = [n] * (n + 1)  # closes[i]: first e >= i where spaces then `}}` follow
    for i in range(n - 1, -1, -1):
        closes[i] = i if text.startswith("}}", space[i]) else closes[i + 1]
    for start in _JAVA_ADD_BLOCK_START.finditer(text):
        p = start.end()
        g = space[p]
        if g < n and closes[g + 1] < n:
            return text[g : closes[g + 1]]
        if g > p and text.startswith("}}", g):  # the regex gives one space back to the group
            return text[g - 1 : g]
    return None


def _java_adds(block: str) -> list[str]:
    """`re.findall(r"add\\((.+?)\\)", block)`, in one pass."""
    n = len(block)
    paren = _next_index(block, ")", "\n")
    out, cursor = [], 0
    while (at := block.find("add(", cursor)) >= 0:
        g = at + 4
        j = paren[g] if g < n else n
        if j == g < n:  # `.+?` takes at least one character, a `)` included
            j = paren[g + 1]
        if j < n:
            out.append(block[g:j])
            cursor = j + 1
        else:
            cursor = at + 1
    return out


def _java_array_body(text: str) -> str | None:
    """The group of the official array pattern's search: `.*?` up to the first `}`, on one line."""
    brace = _next_index(text, "}", "\n")
    for start in _JAVA_ARRAY_START.finditer(text):
        if (j := brace[start.end()]) < len(text):
            return text[start.end() : j]
    return None


def _java_map_body(text: str) -> str | None:
    """The group of the official HashMap pattern's search (DOTALL): `<.*?>` runs to the first
    `>` followed by `()` and `{`; the body, after spaces, an optional `{` and spaces, runs to the
    spaces before the first `}`."""
    n = len(text)
    space = _space_end(text)
    opening = [n] * (n + 1)  # opening[i]: first k >= i where `>`, spaces, `()`, spaces, `{` begin
    for i in range(n - 1, -1, -1):
        a = space[i + 1] if text[i] == ">" else n
        ok = text.startswith("()", a) and space[a + 2] < n and text[space[a + 2]] == "{"
        opening[i] = i if ok else opening[i + 1]
    for start in _JAVA_MAP_START.finditer(text):
        k = opening[start.end()]
        if k >= n:
            return None  # no later start can find one either
        g = space[space[space[k + 1] + 2] + 1]  # past `>` spaces `()` spaces `{` spaces
        if g < n and text[g] == "{":
            g = space[g + 1]
        close = text.find("}", g)
        if close < 0:
            return None
        end = close
        while end > g and text[end - 1].isspace():
            end -= 1
        return text[g:end]
    return None


def _java_puts(body: str) -> list[tuple[str, str]]:
    """`re.findall(r'put\\("(.*?)",\\s*(.*?)\\)', body)`, in one pass: a key runs to the first
    `",` on its line whose value (after spaces) reaches a `)` on its own line."""
    n = len(body)
    space, paren = _space_end(body), _next_index(body, ")", "\n")
    key_end = [n] * (n + 1)  # key_end[i]: first such `",` at >= i, with no newline in between
    for i in range(n - 1, -1, -1):
        ok = body.startswith('",', i) and paren[space[i + 2]] < n
        key_end[i] = i if ok else n if body[i] == "\n" else key_end[i + 1]
    out, cursor = [], 0
    while (at := body.find('put("', cursor)) >= 0:
        q = key_end[at + 5]
        if q < n:
            value = space[q + 2]
            out.append((body[at + 5 : q], body[value : paren[value]]))
            cursor = paren[value] + 1
        else:
            cursor = at + 1
    return out


def _java_empty_map(text: str) -> bool:
    """Whether the official empty-HashMap pattern is found: `<.*?>` (on one line) then `()`."""
    n = len(text)
    space = _space_end(text)
    gt = [n] * (n + 1)  # gt[i]: first k >= i with `>` spaces `()`, no newline in text[i:k]
    for i in range(n - 1, -1, -1):
        ok = text[i] == ">" and text.startswith("()", space[i + 1])
        gt[i] = i if ok else n if text[i] == "\n" else gt[i + 1]
    return any(gt[start.end()] < n for start in _JAVA_MAP_START.finditer(text))


def _java_value(text: str) -> Any:
    """An untyped Java literal: boolean, "string", long, float, then int/float, else text."""
    if text == "true":
        return True
    if text == "false":
        return False
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if _JAVA_LONG.match(text):
        return int(text[:-1])
    if _JAVA_FLOAT.match(text):
        return float(re.sub(r"[fF]$", "", text))
    return _number_or_text(text)


def _number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JS_BIGINT = re.compile(r"^-?\d+n$")
_JS_ARRAY = re.compile(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)")
_JS_NEW_ARRAY_2D = re.compile(r"new\s+Array\(\s*\[")
_JS_OBJECT = re.compile(r"\{(.*?)\}")
# The official converter reads 2-D arrays and object pairs with these patterns:
#   2-D array   \[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)
#   inner rows  \[(.*?)\]  (findall)
#   pairs       ([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)  (findall)
# Python's backtracking makes the first exponential and the others quadratic in the answer's
# length (a 190 KB answer took 90 s). `_js_2d_end`, `_js_rows` and `_js_pairs` compute the same
# matches by scanning: linear time (tests compare them with the patterns on random text).
def js_to_python(value: str, type_name: str, item_type: str | None = None) -> Any:
    """A JavaScript literal as the Python value BFCL compares, by the declared type:
    "'abc'" (String) -> "abc", "12n" (Bigint) -> 12, "[1, 2]" (array) -> [1, 2],
    "{key: 'v'}" (dict) -> {"key": "v"}."""
    if type_name not in JS_TYPES:
        raise ValueError(f"unsupported JavaScript type {type_name!r}")
    if type_name == "String":
        quoted = (value.startswith('"') and value.endswith('"')) or (value.startswith("'") and value.endswith("'"))
        return value[1:-1] if quoted else str(value)
    if type_name == "integer":
        return int(value) if _INT.match(value) else str(value)
    if type_name == "float":
        return float(value) if _JS_FLOAT.match(value) else str(value)
    if type_name == "Bigint":
        return int(value[:-1]) if _JS_BIGINT.match(value) else str(value)
    if type_name == "Boolean":
        return value == "true" if value in ("true", "false") else str(value)
    if type_name == "dict":
        return _js_object(value.strip())
    if type_name == "array":
        try:
            return _js_array(value.strip(), item_type)
        except Exception:  # the official converter falls back to the text on any error
            return value.strip()
    return str(value)  # any


def _js_array(code: str, item_type: str | None) -> Any:
    if (end := _js_2d_end(code)) is not None:
        rows = []
        for index, inner in enumerate(_js_rows(code, end)):
            inner = inner.strip()
            if index == 0 and inner.startswith("["):
                inner = inner[1:]
            rows.append([_js_value(part.strip()) for part in inner.split(",")])
        return rows
    match = _JS_ARRAY.match(code)
    if not match:
        return code
    body = match.group(1) if match.group(1) is not None else match.group(2)
    body = (body or "").strip()
    parts = body.split(",") if body else []
    if not item_type:
        return [_js_value(part.strip()) for part in parts]
    out = []
    for part in map(str.strip, parts):
        # Officially a quoted element is converted with "String" as its own item type, which
        # only matters for arrays of arrays.
        quoted = part.startswith(("'", '"'))
        out.append(js_to_python(part, item_type, "String" if quoted else None))
    return out


def _js_object(code: str) -> Any:
    if code == "{}":
        return {}
    match = _JS_OBJECT.match(code)
    if not match:
        return code
    try:
        out: dict[str, Any] = {}
        for key, raw in _js_pairs(match.group(1)):
            key, raw = key.strip().strip("'\""), raw.strip()
            if raw.startswith("[") and raw.endswith("]"):
                out[key] = js_to_python(raw, "array")
            elif raw.startswith("{") and raw.endswith("}"):
                out[key] = _js_object(raw)
            else:
                out[key] = _js_value(raw.strip("'\""))
        return out
    except Exception:
        return code


def _next_index(text: str, wanted: str, stop: str = "") -> list[int]:
    """For every position i, the first j >= i with text[j] == wanted and no `stop` character in
    text[i:j]; len(text) when there is none. (One pass from the right.)"""
    n = len(text)
    out = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        char = text[i]
        out[i] = i if char == wanted else n if stop and char in stop else out[i + 1]
    return out


def _space_end(text: str) -> list[int]:
    """For every position i, the first j >= i where text[j] is not whitespace (regex \\s)."""
    n = len(text)
    out = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        out[i] = out[i + 1] if text[i].isspace() else i
    return out


def _js_2d_end(code: str) -> int | None:
    """Where the official 2-D array pattern's match of `code` ends (None: no match).

    Rows are `[` ... the first `]` on the line that lets the rest match ... `]`, separated by
    commas, and closed by `]` (or `)` after `new Array(`); `.*?` crosses no newline. Trying the
    `]`s of a row from the left, as the regex does, is a right-to-left table over `]` positions.
    """
    n = len(code)
    space = _space_end(code)
    if code.startswith("["):
        closer, first = "]", space[1]
        if first >= n or code[first] != "[":
            return None
        start = first + 1
    elif match := _JS_NEW_ARRAY_2D.match(code):
        closer, start = ")", match.end()
    else:
        return None
    bracket = _next_index(code, "]", "\n")  # a row's first `]` before the line ends
    # ends[j], for a `]` at j: where the match ends when the current row tries closing at j (then
    # at its later `]`s); None when none of them leads to a match.
    ends: list[int | None] = [None] * (n + 1)

    def row_from(i: int) -> int | None:  # a row whose text starts at i
        return ends[bracket[i]] if i <= n and bracket[i] < n else None

    for j in range(n - 1, start - 1, -1):
        if code[j] != "]":
            continue
        k = space[j + 1]
        end = None
        if k < n and code[k] == closer:
            end = k + 1
        elif k < n and code[k] == ",":
            m = space[k + 1]
            if m < n and code[m] == "[":
                end = row_from(m + 1)
        ends[j] = end if end is not None else row_from(j + 1)
    return row_from(start)


def _js_rows(code: str, end: int) -> list[str]:
    """`re.findall(r"\\[(.*?)\\]", code[:end])`, in one pass."""
    text = code[:end]
    bracket = _next_index(text, "]", "\n")
    rows, cursor = [], 0
    while (opening := text.find("[", cursor)) >= 0:
        close = bracket[opening + 1]
        if close < len(text):
            rows.append(text[opening + 1 : close])
            cursor = close + 1
        else:
            cursor = opening + 1
    return rows


def _js_pairs(body: str) -> list[tuple[str, str]]:
    """`re.findall(r"([^:]+):\\s*(.*?)(?:,\\s*(?=[^,]+:)|$)", body)` for a body without newlines,
    in one pass: a key runs to the next colon; its value to the first comma followed (after
    spaces) by more text and a colon before any other comma, else to the end."""
    n = len(body)
    colon, comma, space = _next_index(body, ":"), _next_index(body, ","), _space_end(body)

    def key_follows(x: int) -> bool:  # (?=[^,]+:) at x
        return x < n and colon[x + 1] < comma[x]

    pairs, c = [], 0
    while c < n:
        if body[c] == ":":  # [^:]+ needs a character before the colon
            c += 1
            continue
        q = colon[c]
        if q >= n:
            break  # no colon left: no key can match from here on
        value_start = space[q + 1]
        t, resume = comma[value_start], n
        while t < n:
            u = space[t + 1]
            if key_follows(u):
                resume = u
                break
            if u > t + 1 and colon[u] < comma[u]:  # the regex gives back one space to the key
                resume = u - 1
                break
            t = comma[t + 1]
        pairs.append((body[c:q], body[value_start:t]))
        c = resume
    return pairs


def _js_value(text: str) -> Any:
    """An untyped JavaScript literal: boolean, quoted string, then int/float, else text."""
    text = text.strip()
    if text == "true":
        return True
    if text == "false":
        return False
    if len(text) >= 1 and ((text[0] == text[-1] == '"') or (text[0] == text[-1] == "'")):
        return text[1:-1]
    return _number_or_text(text)


# ---------------------------------------------------------------------------------------------
# The "bfcl" comparison mode of looptool.calls


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


register_matcher("bfcl", calls_match_bfcl)
