"""JSON Schemas as decoding grammars for vLLM's structured outputs.

A schema that validates data is not always a good grammar to decode with:
* vLLM's grammar compiler cannot combine `pattern` with `minLength`/`maxLength`, so lengths
  beside a pattern are dropped (the value is validated against the full schema afterwards);
* an unbounded string, array or number lets a small model ramble until `max_tokens` cuts its JSON
  in half ("1000000000000..."), so free strings get a `maxLength`, arrays a `maxItems` and
  numbers a range (values the full schema would also accept; bounds the schema sets are kept);
* objects forbid keys the schema does not name (a model must not invent parameters).
"""

from __future__ import annotations

from typing import Any

from looptool.schema import closed_schema

MAX_STRING = 120  # characters of a free-text value: argument values and results are short
MAX_ITEMS = 6
MAX_MAGNITUDE = 10**9


def decoding_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema made safe and bounded for constrained decoding."""
    return _bounded(closed_schema(schema))


def _bounded(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_bounded(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _bounded(v) if isinstance(v, (dict, list)) else v for k, v in schema.items() if k != "properties"}
    if "properties" in schema:
        out["properties"] = {k: _bounded(v) for k, v in schema["properties"].items()}
    kinds = out.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "pattern" in out:
        out.pop("minLength", None)
        out.pop("maxLength", None)
    elif "string" in kinds and not ({"enum", "const", "format"} & out.keys()) and "maxLength" not in out:
        out["maxLength"] = max(MAX_STRING, out.get("minLength", 0))
    if "array" in kinds and "maxItems" not in out:
        out["maxItems"] = max(MAX_ITEMS, out.get("minItems", 0))
    if ({"integer", "number"} & set(kinds)) and not ({"enum", "const"} & out.keys()):
        if "minimum" not in out and "exclusiveMinimum" not in out:
            out["minimum"] = min(-MAX_MAGNITUDE, out.get("maximum", 0))
        if "maximum" not in out and "exclusiveMaximum" not in out:
            out["maximum"] = max(MAX_MAGNITUDE, out.get("minimum", 0))
    return out
