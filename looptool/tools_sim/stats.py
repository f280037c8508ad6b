"""Structural statistics of a tool set: what `looptool tools stats` prints.

They tell whether the constraint tree did its job: every JSON type present, enums, nesting,
optional parameters, and how the tools spread over domains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from looptool.schema import ToolSpec


@dataclass
class ToolStats:
    tools: int = 0
    by_domain: Counter = field(default_factory=Counter)
    param_types: Counter = field(default_factory=Counter)  # every parameter, nested ones included
    required: int = 0
    optional: int = 0
    with_enum: int = 0
    with_format: int = 0
    with_default: int = 0
    nesting_depth: Counter = field(default_factory=Counter)  # tools by deepest object nesting
    params_per_tool: Counter = field(default_factory=Counter)

    @property
    def params(self) -> int:
        return self.required + self.optional

    def as_dict(self) -> dict[str, Any]:
        share = (lambda k: round(k / self.params, 3)) if self.params else (lambda k: 0.0)
        return {
            "tools": self.tools,
            "domains": dict(sorted(self.by_domain.items())),
            "parameters": self.params,
            "parameter_types": dict(self.param_types.most_common()),
            "required": self.required,
            "optional": self.optional,
            "required_share": share(self.required),
            "enum_share": share(self.with_enum),
            "format_share": share(self.with_format),
            "default_share": share(self.with_default),
            "nesting_depth": dict(sorted(self.nesting_depth.items())),
            "params_per_tool": dict(sorted(self.params_per_tool.items())),
        }


def tool_stats(records: list[tuple[str, ToolSpec]]) -> ToolStats:
    """Statistics over (domain, spec) pairs."""
    stats = ToolStats()
    for domain, spec in records:
        stats.tools += 1
        stats.by_domain[domain or "(none)"] += 1
        stats.params_per_tool[len(spec.parameters.get("properties", {}))] += 1
        stats.nesting_depth[_walk_object(spec.parameters, stats, depth=0)] += 1
    return stats


def _walk_object(schema: dict[str, Any], stats: ToolStats, depth: int) -> int:
    """Count the object's parameters into `stats`; return the deepest object nesting below it."""
    required = set(schema.get("required", []))
    deepest = depth
    for name, prop in schema.get("properties", {}).items():
        if not isinstance(prop, dict):
            continue
        stats.param_types[_type_name(prop)] += 1
        if name in required:
            stats.required += 1
        else:
            stats.optional += 1
        stats.with_enum += "enum" in prop
        stats.with_format += "format" in prop or "pattern" in prop
        stats.with_default += "default" in prop
        for child in (prop, prop.get("items")):
            if isinstance(child, dict) and "properties" in child:
                deepest = max(deepest, _walk_object(child, stats, depth + 1))
    return deepest


def _type_name(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "any")
    if isinstance(kind, list):
        kind = "|".join(map(str, kind))
    if kind == "array" and isinstance(prop.get("items"), dict) and prop["items"].get("type") == "object":
        return "array<object>"
    return str(kind)
