"""ACEBench's scoring rules: decoded calls against a possible answer (Normal), phrases in the
reply (Special).

A port of ACEBench's `model_eval/checker.py` (normal_checker and what it calls) and of
eval_main.py's special_eval at commit 56dd66cf, kept close to the original's structure so that
the two can be read side by side; the scores agree with the official ones by construction.

Normal categories (`check_normal`):
- a possible answer that is a list holds alternatives; the answer passes when any does;
- answer keys lose a trailing `_<digits>`; the set of API names must match exactly (names and
  how often each occurs), order does not matter, and matching is not one-to-one: each answer
  call looks for any model call of its name that passes, so one model call may serve two;
- a call without arguments passes only when the schema's `parameters` is `{}`; every
  schema-required parameter must be present; every parameter given must be in the schema and in
  the answer; optional answer parameters may be absent;
- types: "number" is int; the strings "true"/"false" count as booleans; a value of another type
  than the schema's is accepted when it has the answer value's type or equals it, and is then
  not compared (nor is one whose answer value has a type other than the schema's);
- values: top-level int, float and boolean parameters are only type-checked; strings are
  normalised (spaces and `, . / - _ * ^` removed, lowercased, `'` -> `"`) and the answer must be
  a substring of the model's; lists of plain values must be equal after that normalisation, in
  order; lists of objects position by position; objects must have as many keys as the answer,
  all of them in it, and each leaf passes when the answer's printed, normalised form is a
  substring of the model's -- so a list inside an object is compared by its printed form.

Oddities reproduced for comparability (they are ACEBench's, not bugs of this port):
- wrong top-level numbers and flipped booleans pass (they are only type-checked);
- substring matching lets "Direct" match "Indirect", and 5 inside an object match 15;
- an API's schema is found by `name in answer_key` -- the first function whose name is a
  substring of the answer key, which may be another function's;
- 29 possible answers fail against themselves (see tests/unit/test_acebench.py): 27 multi-turn
  answers hold strings with spaces inside objects, which the multi-turn whitespace deletion
  breaks; `normal_preference_40` has an array without an item type; and
  `normal_single_turn_parallel_function_42` expects an empty list, which the nested type check
  refuses;
- a schema type the original does not know (or "objectArray") crashes the official run; here
  the exception fails that entry only (`score_safely` records it).

Special categories (`check_special`), plain case-sensitive substring checks on the raw reply:
incomplete needs "Missing necessary parameters", the API name and every missing parameter;
error_param "There is incorrect value" and every wrong value; irrelevant "the limitations of the
function".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from looptool.eval.acebench_data import Entry

PYTHON_TYPE_MAPPING: dict[str, Any] = {
    "string": str, "integer": int, "float": float, "boolean": bool, "array": list, "tuple": list, "dict": dict,
    "any": str, "list": list, "object": dict, "objectArray": list, "list(string)": list, "list(enum)": list,
    "int": int, "enum": enumerate, "number": int,
}  # fmt: skip  -- verbatim, `enumerate` included: no value ever has that type
PYTHON_NESTED_TYPE_CHECK_LIST = ("array", "tuple", "list(string)", "list(enum)", "object", "objectArray")
_NORMALISE = re.compile(r"[ \,\.\/\-\_\*\^]")
_KEY_INDEX = re.compile(r"_\d+$")


@dataclass(frozen=True)
class CheckResult:
    valid: bool
    error_type: str | None = None
    error: str | None = None


def _result(valid: bool, error_type: str = "", error: Any = None) -> dict[str, Any]:
    return {"valid": valid, "error_type": error_type, "error": error}


def standardize_string(text: str) -> str:
    return _NORMALISE.sub("", text).lower().replace("'", '"')


def check_normal(entry: Entry, model_output: list[dict]) -> CheckResult:
    """Decoded calls against every alternative of the entry's possible answer."""
    alternatives = entry.ground_truth if isinstance(entry.ground_truth, list) else [entry.ground_truth]
    first_error = None
    for answer in alternatives:
        result = normal_checker(entry.functions, model_output, answer)
        if result["valid"]:
            return CheckResult(True)
        first_error = first_error or result
    if first_error is None:  # an empty list of alternatives: nothing can pass
        return CheckResult(False, "function_mismatch", "no possible answer")
    error = first_error.get("error")
    return CheckResult(False, first_error.get("error_type") or "wrong", _text(error))


def _text(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, list):
        return "; ".join(str(e) for e in error) or None
    return str(error)


def check_special(entry: Entry, reply: str) -> CheckResult:
    """eval_main.py's special_eval for one reply; the last failing check names the error, as there."""
    truth, verdict = entry.ground_truth, CheckResult(True)
    if "incomplete" in entry.category:
        for name, values in truth.items():
            if "Missing necessary parameters" not in reply:
                verdict = CheckResult(False, "error_detection", f"did not say that parameters {values} of {name} "
                                                                "are missing ('Missing necessary parameters')")
            elif name not in reply:
                verdict = CheckResult(False, "error_correction", f"did not name the API {name}")
            else:
                for value in values:
                    if value not in reply:
                        verdict = CheckResult(False, "error_correction", f"did not name the missing parameter {value}")
    elif "error" in entry.category:
        for name, values in truth.items():
            if "There is incorrect value" not in reply:
                verdict = CheckResult(False, "error_detection", f"did not say that values {values} of {name} are "
                                                                "wrong ('There is incorrect value')")
            else:
                for value in values:
                    if value not in reply:
                        verdict = CheckResult(False, "error_correction", f"did not name the wrong value {value!r}")
    elif "irrelevant" in entry.category:
        if "the limitations of the function" not in reply:
            verdict = CheckResult(False, "error_detection", "did not say it cannot help ('the limitations of the "
                                                            "function')")
    return verdict


# -- the port of model_eval/checker.py ------------------------------------------------------------


def normal_checker(func_descriptions: list[dict], model_output: list[dict], possible_answers: dict) -> dict[str, Any]:
    if len(model_output) != len(possible_answers):
        return _result(False, "wrong functions number", ["The number of functions does not match the answer."])
    func_name_list = list(possible_answers.keys())
    possible_answers_list = [{_KEY_INDEX.sub("", key): value} for key, value in possible_answers.items()]

    output_counts = Counter(name for call in model_output for name in call)
    answer_counts = Counter(name for call in possible_answers_list for name in call)
    for name in output_counts:
        if name not in answer_counts:
            return _result(False, "function_mismatch", [f"extra function detected: {name} is not in the ground truth"])
    for name in answer_counts:
        if name not in output_counts:
            return _result(False, "function_mismatch", [f"function {name} of the ground truth is not called"])
    for name, count in output_counts.items():
        if count != answer_counts[name]:
            return _result(False, "function_mismatch",
                           [f"incorrect count for function {name}: [expected: {answer_counts[name]}, actual: {count}]"])

    result = _result(True)
    for i, answer in enumerate(possible_answers_list):
        func_description = find_description(func_descriptions, func_name_list[i])
        valid_found = False
        for call in model_output:
            if next(iter(call)) == next(iter(answer)):
                result = simple_function_checker(func_description, call, answer)
                if result["valid"]:
                    valid_found = True
                    break
            else:
                result = _result(False, "simple_function_checker:unclear", ["wrong_function"])
        if valid_found:
            continue
        if not result["valid"]:
            if len(possible_answers_list) > 1:
                result["error"] = [f"Parallel function call failed; expected {possible_answers_list}, real: "
                                   f"{model_output}; {_text(result['error'])}"]
            return result
    return result


def find_description(func_descriptions: Any, name: str) -> dict | None:
    """Upstream's lookup: the first function whose name is a *substring* of the answer key."""
    if isinstance(func_descriptions, list):
        for func_description in func_descriptions:
            if func_description["name"] in name:
                return func_description
        return None
    return func_descriptions


def simple_function_checker(func_description: dict | None, model_output: dict, possible_answers: dict) -> dict[str, Any]:
    if func_description is None:  # upstream: TypeError, the official run stops
        raise LookupError(f"no function of the entry matches the answer key {next(iter(possible_answers))!r}")
    possible_answer = next(iter(possible_answers.values()))
    model_params = next(iter(model_output.values()))
    parameters = func_description["parameters"]
    if model_params == {} and parameters == {}:
        return _result(True)
    if model_params == {} or parameters == {}:
        return _result(False, "wrong_param", "a call without arguments, or arguments to a function that takes none")
    if possible_answer == parameters["properties"]:
        return _result(True)
    if possible_answer == {}:
        return _result(False, "wrong_param", "the answer expects no arguments")

    func_name = func_description["name"]
    if func_name not in model_output:
        return _result(False, "wrong_function_name", [{"wrong_function": {"expected": func_name,
                                                                          "real": next(iter(model_output))}}])
    param_details = parameters["properties"]
    for param in parameters["required"]:
        if param not in model_params:
            return _result(False, "lack_args", f"lack required_params: {param}")

    for param, value in model_params.items():
        if param not in param_details or param not in possible_answer:
            return _result(False, "addition_args", f"addition params: {param}")
        expected_type_description = param_details[param]["type"]
        expected_type_converted = PYTHON_TYPE_MAPPING[expected_type_description]
        nested_type_converted = None
        if expected_type_description in PYTHON_NESTED_TYPE_CHECK_LIST:
            try:
                nested_type = param_details[param]["items"]["type"]
            except (KeyError, TypeError):
                if "string" in param_details[param]["type"]:
                    nested_type = "string"
                elif "enum" in param_details[param]["type"]:
                    nested_type = "enum"
                else:
                    nested_type = "dict"
            nested_type_converted = PYTHON_TYPE_MAPPING[nested_type]
        if expected_type_description == "tuple" and type(value) is tuple:
            value = list(value)
        if expected_type_description == "float" and type(value) is int:
            value = float(value)

        type_check = type_checker(param, value, possible_answer[param], expected_type_description,
                                  expected_type_converted, nested_type_converted, func_name)
        if not type_check["valid"]:
            return _result(False, type_check["error_type"], type_check["error"])
        if type_check["is_variable"]:
            continue
        if expected_type_converted is dict:
            result = dict_checker(param, value, possible_answer[param], func_name)
        elif expected_type_converted is list and nested_type_converted is dict:
            if expected_type_description == "objectArray":  # upstream indexes a dict with [0] here
                raise TypeError("objectArray parameters crash ACEBench's checker")
            result = list_dict_checker(param, value, possible_answer[param], func_name)
        elif expected_type_converted is str:
            result = string_checker(param, value, possible_answer[param], func_name)
        elif expected_type_converted is list:
            result = list_checker(param, value, possible_answer[param], func_name)
        else:
            continue  # int, float, bool: type-checked only
        if not result["valid"]:
            return _result(False, result["error_type"], result["error"])
    return _result(True)


def type_checker(param: str, value: Any, possible_answer: Any, expected_type_description: str,
                 expected_type_converted: Any, nested_type_converted: Any, func_name: str) -> dict[str, Any]:
    result = {"valid": True, "error": [], "is_variable": False, "error_type": "type_error"}
    is_variable = False
    possible_answer_type = type(possible_answer) if possible_answer != "" else None
    if possible_answer_type is not None and possible_answer_type != expected_type_converted:
        is_variable = True
    if value == "true":
        value = True
    if value == "false":
        value = False
    if type(value) == expected_type_converted:  # noqa: E721 - exact type, as upstream (bool is not int)
        if nested_type_converted is None:
            result["is_variable"] = is_variable
            return result
        # Upstream iterates over the answer value: any element that is not a list passes at
        # once, and an empty answer list (or dict) falls through to a failure.
        for possible_answer_item in possible_answer:
            flag = True
            if type(possible_answer_item) is list:
                for value_item in value:
                    item_check = type_checker(param, value_item, possible_answer_item, str(nested_type_converted),
                                              nested_type_converted, None, func_name)
                    if not item_check["valid"]:
                        flag = False
                        break
            if flag:
                return {"valid": True, "error": [], "is_variable": is_variable}
        result["valid"] = False
        result["error"] = [f"Nested type checking failed for parameter {param!r}. Expected outer type "
                           f"{expected_type_description} with inner type {nested_type_converted}. Parameter value: "
                           f"{value!r}."]
        result["error_type"] = "type_error"
    if possible_answer_type is not None and (type(value) == possible_answer_type or possible_answer == value):  # noqa: E721
        result["is_variable"] = True
        return result  # still invalid after a failed nested check, as upstream
    result["valid"] = False
    result["error"] = [f"wrong type for parameter ({param}) of api ({func_name}):[expected: {expected_type_converted}, "
                       f"real: {type(value)}]"]
    result["error_type"] = "type_error"
    return result


def string_checker(param: str, model_output: str, possible_answer: str, func_name: str) -> dict[str, Any]:
    if standardize_string(possible_answer) not in standardize_string(model_output):
        return _result(False, "value_error:string", [f"wrong value for parameter ({param}) of api ({func_name}): "
                                                     f"[expected: {possible_answer}, real: [{model_output}]]"])
    return _result(True)


def list_checker(param: str, model_output: list, possible_answer: list, func_name: str) -> dict[str, Any]:
    model = [standardize_string(v) if type(v) is str else v for v in model_output]
    answer = [standardize_string(v) if type(v) is str else v for v in possible_answer]
    if model != answer:
        return _result(False, "value_error:list/tuple", [f"wrong value for parameter ({param!r}) of api ({func_name}): "
                                                         f"[expected {possible_answer}, real: [{model_output!r}]]"])
    return _result(True)


def dict_checker(param: str, model_output: Any, possible_answer: dict, func_name: str) -> dict[str, Any]:
    wrong = _result(False, "value_error", [f"wrong value for parameter ({param}) of api ({func_name}): "
                                           f"[expected: {possible_answer}, real: [{model_output}]]"])
    if not isinstance(model_output, dict) or len(model_output) != len(possible_answer):
        return wrong
    for key, value in model_output.items():
        if value == "true":
            value = True
        if value == "false":
            value = False
        if key not in possible_answer:
            return wrong
        expected = possible_answer[key]
        if isinstance(expected, dict):
            result = dict_checker(param, value, expected, func_name)
            if not result["valid"]:
                return result
            continue
        # Leaves, lists included, compare by printed form: the answer's inside the model's.
        shown = standardize_string(value) if type(value) is str else value
        wanted = standardize_string(expected) if type(expected) is str else expected
        if str(wanted) not in str(shown):
            return wrong
    return _result(True)


def list_dict_checker(param: str, model_output: list, possible_answers: list, func_name: str) -> dict[str, Any]:
    if len(model_output) != len(possible_answers):
        return _result(False, "value_error:list_dict_count", [f"wrong value for parameter ({param}) of api "
                                                              f"({func_name}): [expected: {possible_answers}, real: "
                                                              f"[{model_output}]]"])
    for model_item, answer_item in zip(model_output, possible_answers):
        result = dict_checker(param, model_item, answer_item, func_name)
        if not result["valid"]:
            return result
    return _result(True)
