"""The constraint tree: a seeded sampler of parameter structures.

Why programmatic: left to itself a generator model writes the same few shapes (two strings and
an integer). Here the *structure* of every synthesised function -- JSON types, enums, numeric
ranges, string formats, required vs optional with defaults, nested objects and arrays of
objects, 0-8 parameters, and the output schema -- is drawn from an explicit distribution, and the
model only fills in names and descriptions. Same seed, same structures.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]

# Weights of the parameter kinds drawn at each slot (before depth limits apply).
KIND_WEIGHTS: dict[str, float] = {
    "string": 0.26,
    "string_enum": 0.12,
    "string_format": 0.10,
    "integer": 0.14,
    "number": 0.10,
    "boolean": 0.08,
    "array": 0.10,
    "object": 0.06,
    "array_of_objects": 0.04,
}
STRING_FORMATS = ("date", "date-time", "email", "uri", "country_code", "currency_code", "language_code")
# ISO codes are not JSON Schema formats; they are expressed as patterns.
FORMAT_PATTERNS = {
    "country_code": "^[A-Z]{2}$",
    "currency_code": "^[A-Z]{3}$",
    "language_code": "^[a-z]{2}$",
}
MAX_PARAMS = 8
MAX_DEPTH = 2  # an object inside an object at most; keeps specs readable and prompts short


@dataclass
class Slot:
    """One parameter position: its structure, without a name or description yet."""

    kind: str
    required: bool
    enum_size: int = 0
    fmt: str | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    item_type: JsonType | None = None
    has_default: bool = False
    children: list[Slot] = field(default_factory=list)

    @property
    def json_type(self) -> JsonType:
        return {
            "string_enum": "string",
            "string_format": "string",
            "array_of_objects": "array",
        }.get(self.kind, self.kind)  # type: ignore[return-value]

    def count(self) -> int:
        """Slots in this subtree (each needs a name and a description)."""
        return 1 + sum(c.count() for c in self.children)


@dataclass
class Structure:
    """The shape of one function: its parameter slots and its output slots."""

    params: list[Slot]
    returns: list[Slot]

    def slots(self) -> list[tuple[str, Slot]]:
        """Every slot with a dotted path (p1, p1.c2, ...), depth first; outputs as r1, r2, ..."""
        out: list[tuple[str, Slot]] = []

        def walk(prefix: str, slots: list[Slot]) -> None:
            for i, slot in enumerate(slots, 1):
                path = f"{prefix}{i}"
                out.append((path, slot))
                walk(f"{path}.c", slot.children)

        walk("p", self.params)
        walk("r", self.returns)
        return out


def sample_structure(rng: random.Random) -> Structure:
    """Draw a function structure: 0-8 parameters (mostly 1-4), and 1-4 output fields."""
    n_params = rng.choices(range(MAX_PARAMS + 1), weights=[3, 14, 20, 20, 16, 11, 7, 5, 4])[0]
    params = [_sample_slot(rng, depth=0, required_p=0.6) for _ in range(n_params)]
    if params and not any(p.required for p in params):
        params[0].required = True  # a function with parameters has at least one required
    returns = [_sample_slot(rng, depth=1, required_p=1.0) for _ in range(rng.randint(1, 4))]
    return Structure(params=params, returns=returns)


def _sample_slot(rng: random.Random, depth: int, required_p: float) -> Slot:
    kinds = [k for k in KIND_WEIGHTS if depth < MAX_DEPTH - 1 or k not in ("object", "array_of_objects")]
    kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
    slot = Slot(kind=kind, required=rng.random() < required_p)
    if kind == "string_enum":
        slot.enum_size = rng.randint(2, 5)
    elif kind == "string_format":
        slot.fmt = rng.choice(STRING_FORMATS)
    elif kind == "integer" and rng.random() < 0.5:
        slot.minimum = rng.choice([0, 1])
        slot.maximum = rng.choice([10, 100, 1000, 10000])
    elif kind == "number" and rng.random() < 0.5:
        slot.minimum = rng.choice([0.0, -90.0, -180.0])
        slot.maximum = rng.choice([1.0, 90.0, 180.0, 1000000.0])
    elif kind == "array":
        slot.item_type = rng.choice(["string", "string", "integer", "number"])
    elif kind in ("object", "array_of_objects"):
        slot.children = [_sample_slot(rng, depth + 1, required_p=0.7) for _ in range(rng.randint(1, 3))]
        if not any(c.required for c in slot.children):
            slot.children[0].required = True
    # Optional scalars often carry a default, as real APIs do.
    slot.has_default = not slot.required and kind in ("string_enum", "integer", "boolean") and rng.random() < 0.6
    return slot


@dataclass(frozen=True)
class Fill:
    """What the generator wrote for one slot."""

    name: str
    description: str
    enum: tuple[str, ...] = ()


def object_schema(slots: list[Slot], fills: dict[str, Fill], prefix: str) -> dict[str, Any]:
    """The JSON Schema object of a list of slots, once the generator has named them.

    `prefix` is the slot path prefix ("p", "r" or "p2.c"). Raises ValueError on two slots with
    one name, which the caller counts as a rejected synthesis.
    """
    properties: dict[str, Any] = {}
    required: list[str] = []
    for i, slot in enumerate(slots, 1):
        path = f"{prefix}{i}"
        fill = fills[path]
        if fill.name in properties:
            raise ValueError(f"duplicate parameter name {fill.name!r}")
        properties[fill.name] = _slot_schema(slot, fill, fills, path)
        if slot.required:
            required.append(fill.name)
    return {"type": "object", "properties": properties, "required": required}


def _slot_schema(slot: Slot, fill: Fill, fills: dict[str, Fill], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": slot.json_type, "description": fill.description}
    if slot.kind == "string_enum":
        schema["enum"] = list(fill.enum)
    if slot.fmt in FORMAT_PATTERNS:
        schema["pattern"] = FORMAT_PATTERNS[slot.fmt]
    elif slot.fmt:
        schema["format"] = slot.fmt
    if slot.minimum is not None:
        schema["minimum"] = slot.minimum
    if slot.maximum is not None:
        schema["maximum"] = slot.maximum
    if slot.kind == "array":
        schema["items"] = {"type": slot.item_type}
    if slot.kind == "object":
        schema.update(object_schema(slot.children, fills, f"{path}.c"))
    if slot.kind == "array_of_objects":
        schema["items"] = object_schema(slot.children, fills, f"{path}.c")
    if slot.has_default:
        schema["default"] = _default(slot, fill)
    return schema


def _default(slot: Slot, fill: Fill) -> Any:
    if slot.kind == "string_enum":
        return fill.enum[0]
    if slot.kind == "boolean":
        return False
    return slot.minimum if slot.minimum is not None else 10  # integer


def describe(slot: Slot) -> str:
    """A short phrase of the slot's structure, for the generator's prompt."""
    words = {
        "string_enum": f"one of {slot.enum_size} string values",
        "string_format": f"string ({slot.fmt})",
        "array": f"list of {slot.item_type}s",
        "object": "object with fields",
        "array_of_objects": "list of objects with fields",
    }.get(slot.kind, slot.kind)
    if slot.minimum is not None:
        words += f" from {slot.minimum} to {slot.maximum}"
    return f"{words}, {'required' if slot.required else 'optional'}"
