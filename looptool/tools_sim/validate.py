"""Validation of tool specs and of call arguments against them.

`spec_problems` is stricter than `ToolSpec` itself (which only guarantees a usable JSON Schema):
synthesised tools must also read well -- snake_case names, descriptions everywhere, non-empty
enums, sane ranges and defaults -- because they become prompts. `argument_errors` is what the
tool simulator, the dialogue verifier and the expander use to decide that a call is invalid;
its errors are structured so that they can be shown to a model as a tool error result.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonschema
import referencing.exceptions
from pydantic import BaseModel

from looptool.schema import ToolCall, ToolSpec, closed_schema, schema_validator

FUNCTION_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")  # snake_case, dotted allowed
PARAM_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def spec_problems(spec: ToolSpec, *, strict: bool = True) -> list[str]:
    """Everything wrong with a spec, as readable reasons (empty when it is fine).

    `strict=False` keeps only what makes a spec unusable (empty enums, impossible ranges); it is
    for imported tools, which are taken as their authors wrote them -- names, descriptions,
    defaults that do not fit their own type, nested `required` lists that name nothing -- since
    real tool sets (BFCL's among them) are full of these and a model still calls them fine.
    """
    style = strict
    problems: list[str] = []
    if style and not FUNCTION_NAME_RE.match(spec.name):
        problems.append(f"function name {spec.name!r} is not snake_case")
    if style and not spec.description.strip():
        problems.append("function has no description")
    _check_object(spec.parameters, "parameters", problems, style)
    if spec.returns is not None and spec.returns.get("type") == "object":
        _check_object(spec.returns, "returns", problems, style)
    return problems


def _check_object(schema: dict[str, Any], path: str, problems: list[str], style: bool) -> None:
    properties = schema.get("properties", {})
    for name in schema.get("required", []) if style else []:
        if name not in properties:
            problems.append(f"{path}: required {name!r} is not a property")
    for name, prop in properties.items():
        where = f"{path}.{name}"
        if not isinstance(prop, dict):
            problems.append(f"{where}: not a schema object")
            continue
        if style and not PARAM_NAME_RE.match(name):
            problems.append(f"{where}: name is not snake_case")
        if style and not str(prop.get("description", "")).strip():
            problems.append(f"{where}: no description")
        _check_property(prop, where, problems, style)


def _check_property(prop: dict[str, Any], where: str, problems: list[str], style: bool) -> None:
    if "enum" in prop:
        values = prop["enum"]
        if not isinstance(values, list) or not values:
            problems.append(f"{where}: enum is empty")
        elif style and len(values) < 2:
            problems.append(f"{where}: enum has a single value")
        elif len({repr(v) for v in values}) != len(values):
            problems.append(f"{where}: enum has repeated values")
        elif style and any(isinstance(v, str) and not v.strip() for v in values):
            problems.append(f"{where}: enum has a blank value")
    low, high = prop.get("minimum"), prop.get("maximum")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        problems.append(f"{where}: minimum {low} > maximum {high}")
    if style and "default" in prop:
        # The property is validated on its own, so a reference into the rest of the schema cannot
        # resolve here: such a default is left unchecked rather than reported.
        try:
            error = jsonschema.exceptions.best_match(
                schema_validator({k: v for k, v in prop.items() if k != "default"}).iter_errors(prop["default"])
            )
        except referencing.exceptions.Unresolvable:
            error = None
        if error is not None:
            problems.append(f"{where}: default {prop['default']!r} is invalid: {error.message}")
    if prop.get("type") == "object" or "properties" in prop:
        _check_object(prop, where, problems, style)
    items = prop.get("items")
    if isinstance(items, dict):
        _check_property(items, f"{where}[]", problems, style)


# ---------------------------------------------------------------------------------------------
# Arguments

ArgumentErrorKind = Literal["unknown_tool", "missing_required", "unknown_param", "wrong_type", "enum", "range", "format", "invalid"]

_KINDS: dict[str, ArgumentErrorKind] = {
    "required": "missing_required",
    "additionalProperties": "unknown_param",
    "type": "wrong_type",
    "enum": "enum",
    "const": "enum",
    "minimum": "range",
    "maximum": "range",
    "exclusiveMinimum": "range",
    "exclusiveMaximum": "range",
    "minLength": "range",
    "maxLength": "range",
    "minItems": "range",
    "maxItems": "range",
    "format": "format",
    "pattern": "format",
}


class ArgumentError(BaseModel):
    """One reason a call's arguments do not fit the tool: what kind, where, and a message."""

    kind: ArgumentErrorKind
    path: str
    message: str


def argument_errors(spec: ToolSpec, call: ToolCall) -> list[ArgumentError]:
    """Why `call` is not a valid call of `spec` (empty when it is).

    Unknown parameters are errors even where the schema does not say `additionalProperties:
    false`: a model that invents a parameter has made a mistake worth catching.
    """
    if call.name != spec.name:
        return [ArgumentError(kind="unknown_tool", path="", message=f"called {call.name!r}, the tool is {spec.name!r}")]
    schema = closed_schema(spec.parameters)
    validator = schema_validator(schema, format_checker=jsonschema.FormatChecker())
    try:
        found = list(validator.iter_errors(call.arguments))
    except referencing.exceptions.Unresolvable as exc:
        # A reference inside the schema that points nowhere: the tool's fault, reported on the call.
        return [ArgumentError(kind="invalid", path="", message=f"the tool's schema has a reference that does not resolve: {exc}")]
    errors = []
    for error in sorted(found, key=lambda e: list(map(str, e.absolute_path))):
        path = "/".join(map(str, error.absolute_path))
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else ""
            path = f"{path}/{missing}".strip("/")
        errors.append(ArgumentError(kind=_KINDS.get(str(error.validator), "invalid"), path=path, message=error.message))
    return errors
