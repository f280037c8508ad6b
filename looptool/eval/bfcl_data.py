"""The BFCL-v3 single-turn test data that ships with the package, and the list of all categories.

The files under `data/bfcl_v3/` are the official BFCL v3 test entries and ground truth, copied
unchanged (see SOURCE_AND_LICENSE.md there). They are JSON Lines despite the `.json` name. They
ship inside the package because an evaluation must run without network access.

An entry's id names its category: `simple_13`, `parallel_multiple_3`, `live_simple_106-63-0`.
The irrelevance, live_irrelevance and live_relevance categories have no ground truth: they only
ask whether the model calls a function at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from looptool.categories import BFCL_ALL_CATEGORIES, BFCL_CATEGORIES, BFCL_MULTI_TURN_CATEGORIES

# The category names, as this package calls them. They live below the config, which checks them at
# load. Multi-turn categories are loaded and scored by their own modules (bfcl_multi_turn_data,
# bfcl_multi_turn); `CATEGORIES` is the single-turn list.
CATEGORIES = BFCL_CATEGORIES
MULTI_TURN_CATEGORIES = BFCL_MULTI_TURN_CATEGORIES
ALL_CATEGORIES = BFCL_ALL_CATEGORIES  # the 17 of the v3 leaderboard
NO_GROUND_TRUTH = frozenset({"irrelevance", "live_irrelevance", "live_relevance"})

Language = Literal["python", "java", "javascript"]


@dataclass(frozen=True)
class Entry:
    """One test question: the messages of its single turn, the functions on offer, and (for the
    AST categories) the accepted calls, `[{func_name: {param: [accepted values...]}}, ...]`."""

    id: str
    category: str
    messages: list[dict]
    functions: list[dict]
    ground_truth: list[dict] | None


def default_data_dir() -> Path:
    """The vendored data folder inside the installed package."""
    return Path(str(resources.files("looptool.eval").joinpath("data", "bfcl_v3")))


def _check_category(name: str) -> str:
    if name not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {name!r}; valid: {', '.join(CATEGORIES)}")
    return name


def language_of(category: str) -> Language:
    """The language the category's functions are written in (decides the type rules)."""
    _check_category(category)
    if category == "java":
        return "java"
    if category == "javascript":
        return "javascript"
    return "python"


def category_of(entry_id: str) -> str:
    """`live_simple_106-63-0` -> `live_simple`: everything before the last `_<index>`."""
    head, sep, index = entry_id.rpartition("_")
    if not sep or not index or not index.replace("-", "").isdigit() or head not in CATEGORIES:
        raise ValueError(f"not a BFCL v3 single-turn entry id: {entry_id!r}")
    return head


def load_category(name: str, data_dir: Path | None = None) -> list[Entry]:
    """All entries of one category, in file order, with their ground truth joined by id."""
    _check_category(name)
    return list(_load(name, Path(data_dir) if data_dir is not None else default_data_dir()))


def load_entries(ids: Iterable[str], data_dir: Path | None = None) -> dict[str, Entry]:
    """The entries with these ids (any mix of categories), keyed by id. An id that is not one
    of a category raises ValueError; a well-formed id missing from the data (`simple_9999`) is
    left out, so callers compare the keys with what they asked for."""
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    by_category: dict[str, dict[str, Entry]] = {}
    out: dict[str, Entry] = {}
    for entry_id in ids:
        category = category_of(entry_id)
        if category not in by_category:
            by_category[category] = {e.id: e for e in _load(category, folder)}
        if entry_id in by_category[category]:
            out[entry_id] = by_category[category][entry_id]
    return out


@lru_cache(maxsize=None)
def _load(category: str, folder: Path) -> tuple[Entry, ...]:
    """Parse one category once per process (the whole set is about 8 MB of JSON)."""
    answers: dict[str, list[dict]] = {}
    if category not in NO_GROUND_TRUTH:
        for row in read_jsonl(folder / "possible_answer" / f"BFCL_v3_{category}.json"):
            answers[row["id"]] = row["ground_truth"]
    entries = []
    for row in read_jsonl(folder / f"BFCL_v3_{category}.json"):
        truth = None
        if category not in NO_GROUND_TRUTH:
            if row["id"] not in answers:
                raise ValueError(f"{category}: entry {row['id']!r} has no possible answer")
            truth = answers[row["id"]]
        turns = row["question"]
        if len(turns) != 1:
            raise ValueError(f"{row['id']}: expected one turn, got {len(turns)}")
        entries.append(Entry(row["id"], category, turns[0], row["function"], truth))
    return tuple(entries)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
