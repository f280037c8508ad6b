"""Importers: tool definitions from files people already have.

Accepted, detected from the content:
- OpenAI `tools`: a list of `{"type": "function", "function": {...}}` (or `{"tools": [...]}`);
- MCP `tools/list` results: `{"tools": [{"name", "description", "inputSchema", "outputSchema"?}]}`,
  bare or inside a JSON-RPC response (`{"result": {"tools": [...]}}`);
- BFCL function docs: BFCL's test files (JSON Lines of `{"id", "question", "function": [...]}`)
  or a list of its function docs, whose types are BFCL's own (`dict`, `float`, `tuple`, `any`,
  and Java/JavaScript names) and are mapped to JSON Schema;
- a plain list of function specs `{"name", "description", "parameters"}` (JSON Schema).

A file is taken whole or not at all: the first problem raises ToolImportError naming the file,
the line or JSON path, and the reason; nothing is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from looptool.schema import JSONLimitError, ToolSpec, load_json
from looptool.tools_sim.validate import spec_problems


class ToolImportError(Exception):
    """A tools file that cannot be imported. The message is one line: file, where, why."""


@dataclass
class Imported:
    """The specs read from one file, in file order (identical repeats included)."""

    format: str
    specs: list[ToolSpec]


# BFCL's parameter types (Python, Java and JavaScript categories) -> JSON Schema types.
# `any` becomes a schema with no type; `tuple` an array, as BFCL's own FC conversion does.
BFCL_TYPES = {
    "string": "string", "String": "string", "char": "string", "str": "string",
    "integer": "integer", "int": "integer", "long": "integer", "Long": "integer", "short": "integer",
    "byte": "integer", "Integer": "integer", "Bigint": "integer", "BigInteger": "integer",
    "float": "number", "double": "number", "Double": "number", "Float": "number", "number": "number",
    "Number": "number",
    "boolean": "boolean", "Boolean": "boolean", "bool": "boolean",
    "array": "array", "tuple": "array", "list": "array", "Array": "array", "ArrayList": "array",
    "List": "array", "Set": "array",
    "dict": "object", "object": "object", "HashMap": "object", "Map": "object", "Hashtable": "object",
    "Object": "object", "Queue": "array", "Stack": "array", "LinkedList": "array",
    "any": None,
    "": None,  # seen in BFCL's JavaScript docs: no type given
}  # fmt: skip


def load_tools_file(path: str | Path) -> Imported:
    """Read and convert every tool in a file; ToolImportError on the first problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolImportError(f"{path}: cannot read: {exc}") from None
    return parse_tools_text(text, str(path))


def parse_tools_text(text: str, name: str = "<input>") -> Imported:
    """Like load_tools_file, for text already in memory (`name` is used in messages)."""
    try:
        data = load_json(text)
    except JSONLimitError as exc:
        raise ToolImportError(f"{name}: line {exc.lineno}: {exc}") from None
    except json.JSONDecodeError as whole_error:
        data = _json_lines(text, name, whole_error)
        if data is None:
            raise ToolImportError(f"{name}: line {whole_error.lineno}: invalid JSON: {whole_error.msg}") from None
        return _bfcl_entries(data, name)
    return parse_tools(data, name)


def _json_lines(text: str, name: str, whole_error: json.JSONDecodeError) -> list[tuple[int, Any]] | None:
    """JSON Lines, when the text is several JSON values one per line; else None."""
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if len(lines) < 2:
        return None
    try:
        first = load_json(lines[0][1])
    except JSONLimitError as exc:
        raise ToolImportError(f"{name}: line {lines[0][0]}: {exc}") from None
    except json.JSONDecodeError:
        return None
    if not isinstance(first, dict):
        return None
    values = []
    for number, line in lines:
        try:
            values.append((number, load_json(line)))
        except JSONLimitError as exc:
            raise ToolImportError(f"{name}: line {number}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ToolImportError(f"{name}: line {number}: invalid JSON: {exc.msg}") from None
    return values


def parse_tools(data: Any, name: str = "<input>") -> Imported:
    """Detect the format of already-parsed JSON and convert it."""
    if isinstance(data, dict) and isinstance(data.get("result"), dict) and "tools" in data["result"]:
        data = data["result"]  # a JSON-RPC response
    if isinstance(data, dict) and "tools" in data:
        tools = data["tools"]
        where = "tools"
    elif isinstance(data, dict) and "function" in data and "question" in data:
        return _bfcl_entries([(1, data)], name)
    else:
        tools, where = data, ""
    if not isinstance(tools, list):
        raise ToolImportError(f"{name}: {where or '<root>'}: expected a list of tools, got {type(tools).__name__}")
    if not tools:
        raise ToolImportError(f"{name}: {where or '<root>'}: the list of tools is empty")
    first = tools[0]
    if not isinstance(first, dict):
        raise ToolImportError(f"{name}: {where}[0]: expected an object, got {type(first).__name__}")
    if first.get("type") == "function" or "function" in first:
        fmt, convert = "openai", _from_openai
    elif "inputSchema" in first:
        fmt, convert = "mcp", _from_mcp
    elif _looks_bfcl(first):
        fmt, convert = "bfcl", _from_bfcl
    else:
        fmt, convert = "functions", _from_plain
    specs = [_convert(convert, item, f"{name}: {where}[{i}]") for i, item in enumerate(tools)]
    return Imported(fmt, specs)


def _bfcl_entries(entries: list[tuple[int, Any]], name: str) -> Imported:
    specs = []
    for number, entry in entries:
        where = f"{name}: line {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("function"), list):
            raise ToolImportError(f"{where}: expected a BFCL entry with a 'function' list")
        for i, doc in enumerate(entry["function"]):
            specs.append(_convert(_from_bfcl, doc, f"{where}: function[{i}]"))
    if not specs:
        raise ToolImportError(f"{name}: no function docs found")
    return Imported("bfcl", specs)


def _convert(convert, item: Any, where: str) -> ToolSpec:
    if not isinstance(item, dict):
        raise ToolImportError(f"{where}: expected an object, got {type(item).__name__}")
    try:
        spec = convert(item)
    except _FieldError as exc:
        raise ToolImportError(f"{where}.{exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(map(str, err["loc"]))
        raise ToolImportError(f"{where}.{loc}: {err['msg']}") from None
    problems = spec_problems(spec, strict=False)
    if problems:
        raise ToolImportError(f"{where}: {problems[0]}")
    return spec


class _FieldError(Exception):
    """A problem at a field path inside one tool (the path comes first in the message)."""


def _from_openai(item: dict[str, Any]) -> ToolSpec:
    if item.get("type", "function") != "function" or not isinstance(item.get("function"), dict):
        raise _FieldError("function: expected {'type': 'function', 'function': {...}}")
    return _from_plain(item["function"])


def _from_plain(item: dict[str, Any]) -> ToolSpec:
    _require_name(item)
    params = item.get("parameters", {"type": "object", "properties": {}})
    return ToolSpec(name=item["name"], description=_text(item.get("description")), parameters=params)


def _from_mcp(item: dict[str, Any]) -> ToolSpec:
    _require_name(item)
    schema = item.get("inputSchema")
    if not isinstance(schema, dict):
        raise _FieldError("inputSchema: expected a JSON Schema object")
    schema = {k: v for k, v in schema.items() if k != "$schema"}
    schema.setdefault("properties", {})
    output = item.get("outputSchema")
    returns = {k: v for k, v in output.items() if k != "$schema"} if isinstance(output, dict) else None
    return ToolSpec(name=item["name"], description=_text(item.get("description")), parameters=schema, returns=returns)


def _looks_bfcl(item: dict[str, Any]) -> bool:
    params = item.get("parameters")
    return isinstance(params, dict) and params.get("type") == "dict"


def _from_bfcl(item: dict[str, Any]) -> ToolSpec:
    _require_name(item)
    params = item.get("parameters")
    if not isinstance(params, dict):
        raise _FieldError("parameters: expected an object")
    return ToolSpec(name=item["name"], description=_text(item.get("description")), parameters=_bfcl_schema(params, "parameters"))


def _bfcl_schema(node: Any, path: str) -> Any:
    """Map BFCL's type names to JSON Schema, recursively; keep every other keyword."""
    if not isinstance(node, dict):
        raise _FieldError(f"{path}: expected an object, got {type(node).__name__}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            if not isinstance(value, str) or value not in BFCL_TYPES:
                raise _FieldError(f"{path}.type: unknown BFCL type {value!r}")
            if BFCL_TYPES[value] is not None:
                out["type"] = BFCL_TYPES[value]
        elif key == "properties":
            if not isinstance(value, dict):
                raise _FieldError(f"{path}.properties: expected an object")
            out["properties"] = {k: _bfcl_schema(v, f"{path}.properties.{k}") for k, v in value.items()}
        elif key == "items":
            out["items"] = _bfcl_schema(value, f"{path}.items")
        elif key == "optional":
            continue  # BFCL's flag; `required` already says it
        else:
            out[key] = value
    return out


def _require_name(item: dict[str, Any]) -> None:
    if not isinstance(item.get("name"), str) or not item["name"]:
        raise _FieldError(f"name: expected a non-empty string, got {item.get('name')!r:.60}")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _FieldError(f"description: expected a string, got {type(value).__name__}")
    return value
