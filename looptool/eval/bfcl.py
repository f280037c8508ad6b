"""BFCL-v3 evaluation in one import: the checkers, the decoders and the data.

`calls_match_bfcl` judges predicted calls against expected ones with BFCL's rules (looser than
`looptool.calls.calls_match`, which training and probing use).

Multi-turn: `load_multi_turn_entries` / `load_multi_turn_category` give the entries,
`BackendSession(entry)` fresh backend instances whose `execute(call)` returns the result string a
model is shown, and `check_multi_turn(entry, output)` the verdict on an answer (per turn, the text
of each step).
"""

from __future__ import annotations

from looptool.eval.bfcl_checker import CheckResult, calls_match_bfcl, check, has_call, is_call_format
from looptool.eval.bfcl_data import (
    ALL_CATEGORIES,
    CATEGORIES,
    MULTI_TURN_CATEGORIES,
    Entry,
    category_of,
    language_of,
    load_category,
    load_entries,
)
from looptool.eval.bfcl_decode import Decoded, decode, encode_python, encode_tool_call_tags
from looptool.eval.bfcl_multi_turn import check_multi_turn, decode_step
from looptool.eval.bfcl_multi_turn_data import (
    MultiTurnEntry,
    is_multi_turn_id,
    load_multi_turn_category,
    load_multi_turn_entries,
)
from looptool.eval.bfcl_multi_turn_exec import BackendSession

__all__ = [
    "ALL_CATEGORIES",
    "BackendSession",
    "CATEGORIES",
    "CheckResult",
    "Decoded",
    "Entry",
    "MULTI_TURN_CATEGORIES",
    "MultiTurnEntry",
    "calls_match_bfcl",
    "category_of",
    "check",
    "check_multi_turn",
    "decode",
    "decode_step",
    "encode_python",
    "encode_tool_call_tags",
    "has_call",
    "is_call_format",
    "is_multi_turn_id",
    "language_of",
    "load_category",
    "load_entries",
    "load_multi_turn_category",
    "load_multi_turn_entries",
]
