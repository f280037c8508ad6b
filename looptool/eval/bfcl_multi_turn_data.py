"""The BFCL-v3 multi-turn test data that ships with the package (see data/bfcl_v3/SOURCE_AND_LICENSE.md).

A multi-turn entry is a conversation with simulated services: per user turn, its messages; the
backend classes involved and their starting state (`initial_config`); and, as ground truth, per
turn the calls BFCL expects, written as Python call strings (`cd(folder='document')`,
sometimes with positional arguments: `sort('final_report.pdf')`). The function docs offered to a
model are the docs of the involved classes (`multi_turn_func_doc/`, one file per class). In
multi_turn_miss_func some functions are withheld until a later turn (`missed_function`): the
docs offered at the start leave them out, and they are added at that turn, exactly as BFCL's
inference does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from looptool.eval.bfcl_data import MULTI_TURN_CATEGORIES, default_data_dir, read_jsonl

# Backend class -> its function-doc file (BFCL's MULTI_TURN_FUNC_DOC_FILE_MAPPING).
FUNC_DOC_FILES: dict[str, str] = {
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
}
LONG_CONTEXT_CATEGORY = "multi_turn_long_context"


@dataclass(frozen=True)
class MultiTurnEntry:
    """One multi-turn conversation and its ground truth.

    `turns[i]` holds the messages of user turn i (empty in miss_func at the turn where withheld
    functions arrive); `ground_truth[i]` the call strings expected in turn i (empty where the
    model cannot act yet). `functions` are the docs offered from the start; `functions_added[i]`
    the docs that arrive at turn i.
    """

    id: str
    category: str
    turns: list[list[dict[str, Any]]]
    ground_truth: list[list[str]]
    involved_classes: list[str]
    initial_config: dict[str, Any]
    functions: list[dict[str, Any]]
    functions_added: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def long_context(self) -> bool:
        """Backends of long-context entries load extra fixtures (long files, lists, histories)."""
        return self.category == LONG_CONTEXT_CATEGORY

    @property
    def missed_function(self) -> dict[int, list[str]]:
        """BFCL's `missed_function`: turn -> names of the functions withheld until that turn."""
        return {turn: [doc["name"] for doc in docs] for turn, docs in self.functions_added.items()}

    def functions_at(self, turn: int) -> list[dict[str, Any]]:
        """The docs offered at `turn`: those of the start plus every one added up to that turn."""
        added = [doc for t in sorted(self.functions_added) if t <= turn for doc in self.functions_added[t]]
        return [*self.functions, *added]


def is_multi_turn_id(entry_id: str) -> bool:
    """True for ids such as `multi_turn_base_0`: routing is by id, as in BFCL."""
    return entry_id.startswith("multi_turn_")


def multi_turn_category_of(entry_id: str) -> str:
    """`multi_turn_miss_func_12` -> `multi_turn_miss_func`; ValueError for anything else."""
    head, sep, index = entry_id.rpartition("_")
    if not sep or not index.isdigit() or head not in MULTI_TURN_CATEGORIES:
        raise ValueError(f"not a BFCL v3 multi-turn entry id: {entry_id!r}")
    return head


def load_multi_turn_category(name: str, data_dir: Path | None = None) -> list[MultiTurnEntry]:
    """All entries of one multi-turn category, in file order, with their ground truth."""
    if name not in MULTI_TURN_CATEGORIES:
        raise ValueError(f"unknown BFCL multi-turn category {name!r}; valid: {', '.join(MULTI_TURN_CATEGORIES)}")
    return list(_load(name, Path(data_dir) if data_dir is not None else default_data_dir()))


def load_multi_turn_entries(ids: Iterable[str], data_dir: Path | None = None) -> dict[str, MultiTurnEntry]:
    """The entries with these ids, keyed by id; like `bfcl_data.load_entries`, an id of no
    multi-turn category raises ValueError and a well-formed id missing from the data is left out."""
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    by_category: dict[str, dict[str, MultiTurnEntry]] = {}
    out: dict[str, MultiTurnEntry] = {}
    for entry_id in ids:
        category = multi_turn_category_of(entry_id)
        if category not in by_category:
            by_category[category] = {e.id: e for e in _load(category, folder)}
        if entry_id in by_category[category]:
            out[entry_id] = by_category[category][entry_id]
    return out


def function_docs(class_name: str, data_dir: Path | None = None) -> list[dict[str, Any]]:
    """The function docs of one backend class, in file order."""
    if class_name not in FUNC_DOC_FILES:
        raise ValueError(f"unknown BFCL backend class {class_name!r}; known: {', '.join(FUNC_DOC_FILES)}")
    return list(_docs(class_name, Path(data_dir) if data_dir is not None else default_data_dir()))


@lru_cache(maxsize=None)
def _docs(class_name: str, folder: Path) -> tuple[dict[str, Any], ...]:
    return tuple(read_jsonl(folder / "multi_turn_func_doc" / FUNC_DOC_FILES[class_name]))


@lru_cache(maxsize=None)
def _load(category: str, folder: Path) -> tuple[MultiTurnEntry, ...]:
    """Parse one category once per process and join the ground truth by id."""
    answer_file = folder / "possible_answer" / f"BFCL_v3_{category}.json"
    answers = {row["id"]: row["ground_truth"] for row in read_jsonl(answer_file)}
    entries = []
    for row in read_jsonl(folder / f"BFCL_v3_{category}.json"):
        if row["id"] not in answers:
            raise ValueError(f"{category}: entry {row['id']!r} has no possible answer")
        functions = [doc for name in row["involved_classes"] for doc in _docs(name, folder)]
        added: dict[int, list[dict[str, Any]]] = {}
        # As BFCL's inference: a withheld function leaves the starting docs and arrives at its turn.
        for turn, names in row.get("missed_function", {}).items():
            for name in names:
                doc = next((d for d in functions if d["name"] == name), None)
                if doc is None:
                    raise ValueError(f"{row['id']}: missed function {name!r} is not a function of its classes")
                functions.remove(doc)
                added.setdefault(int(turn), []).append(doc)
        entries.append(MultiTurnEntry(row["id"], category, row["question"], answers[row["id"]],
                                      row["involved_classes"], row["initial_config"], functions, added))
    return tuple(entries)
