"""The ACEBench (English) test data that ships with the package: Normal and Special categories.

The files under `data/acebench/` are ACEBench's own test entries and possible answers, copied
unchanged (see SOURCE_AND_LICENSE.md there); JSON Lines despite the `.json` name. The Agent
categories are not shipped: they need ACEBench's sandbox classes and an LLM user simulator.

An entry's id names its category: `normal_atom_bool_3`, `special_incomplete_12`; the multi-turn
Normal categories have one entry per turn of a dialogue, `normal_multi_turn_user_adjust_<dialogue>_<turn>`.
The category is the id without its trailing `_<digits>` groups.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from looptool.categories import (ACEBENCH_AGENT_CATEGORIES, ACEBENCH_CATEGORIES, ACEBENCH_GROUPS,
                                 ACEBENCH_MULTI_TURN_CATEGORIES, ACEBENCH_NORMAL_CATEGORIES, ACEBENCH_SPECIAL_CATEGORIES)
from looptool.eval.bfcl_data import read_jsonl

# The category names, as this package calls them (they live below the config, which checks them at load).
NORMAL_CATEGORIES = ACEBENCH_NORMAL_CATEGORIES
SPECIAL_CATEGORIES = ACEBENCH_SPECIAL_CATEGORIES
CATEGORIES = ACEBENCH_CATEGORIES
MULTI_TURN_CATEGORIES = ACEBENCH_MULTI_TURN_CATEGORIES
AGENT_CATEGORIES = ACEBENCH_AGENT_CATEGORIES  # not run here
GROUPS = ACEBENCH_GROUPS  # the shorthands --categories accepts

_TRAILING_INDEXES = re.compile(r"(_\d+)+$")


@dataclass(frozen=True)
class Entry:
    """One test question. `question` is ACEBench's transcript text ("user: ...\\nsystem: ...");
    `time` and `profile` go into its system prompt; `ground_truth` is the possible answer as
    published: for Normal categories `{api_name: {param: value}}` or a list of such alternatives,
    for Special ones what the reply must mention."""

    id: str
    category: str
    question: str
    functions: list[dict[str, Any]]
    ground_truth: Any
    time: str = ""
    profile: str = ""

    @property
    def is_special(self) -> bool:
        return self.category in SPECIAL_CATEGORIES

    @property
    def is_multi_turn(self) -> bool:
        return self.category in MULTI_TURN_CATEGORIES


def default_data_dir() -> Path:
    """The vendored data folder inside the installed package."""
    return Path(str(resources.files("looptool.eval").joinpath("data", "acebench")))


def category_of(entry_id: str) -> str:
    """`normal_multi_turn_user_adjust_3_1` -> `normal_multi_turn_user_adjust`; ValueError for an
    id that is not one of a shipped category."""
    head = _TRAILING_INDEXES.sub("", entry_id)
    if head == entry_id or head not in CATEGORIES:
        raise ValueError(f"not an ACEBench Normal/Special entry id: {entry_id!r}")
    return head


def dialogue_of(entry_id: str) -> str:
    """A multi-turn entry's dialogue: its id without the trailing turn number."""
    return entry_id.rpartition("_")[0]


def load_category(name: str, data_dir: Path | None = None) -> list[Entry]:
    """All entries of one category, in file order, with their possible answers joined by id."""
    if name not in CATEGORIES:
        raise ValueError(f"unknown ACEBench category {name!r}; valid: {', '.join(CATEGORIES)}")
    return list(_load(name, Path(data_dir) if data_dir is not None else default_data_dir()))


def load_entries(ids: Iterable[str], data_dir: Path | None = None) -> dict[str, Entry]:
    """The entries with these ids (any mix of categories), keyed by id. An id that is not one of a
    category raises ValueError; a well-formed id missing from the data is left out."""
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    out: dict[str, Entry] = {}
    for entry_id in ids:
        by_id = {e.id: e for e in _load(category_of(entry_id), folder)}
        if entry_id in by_id:
            out[entry_id] = by_id[entry_id]
    return out


@lru_cache(maxsize=None)
def _load(category: str, folder: Path) -> tuple[Entry, ...]:
    answers = {row["id"]: row["ground_truth"] for row in read_jsonl(folder / "possible_answer" / f"data_{category}.json")}
    entries = []
    for row in read_jsonl(folder / f"data_{category}.json"):
        if row["id"] not in answers:
            raise ValueError(f"{category}: entry {row['id']!r} has no possible answer")
        entries.append(Entry(row["id"], category, row["question"], row["function"], answers[row["id"]],
                             row.get("time") or "", row.get("profile") or ""))
    return tuple(entries)
