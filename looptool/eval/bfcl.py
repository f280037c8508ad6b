"""BFCL-v3 evaluation in one import: the checker, the decoders and the data.

Importing this module registers the "bfcl" comparison mode of `looptool.calls`
(`calls_match(..., mode="bfcl")`), which judges calls with BFCL's rules.
"""

from __future__ import annotations

from looptool.eval.bfcl_checker import CheckResult, calls_match_bfcl, check, has_call, is_call_format
from looptool.eval.bfcl_data import CATEGORIES, Entry, category_of, language_of, load_category, load_entries
from looptool.eval.bfcl_decode import Decoded, decode, encode_python, encode_tool_call_tags

__all__ = [
    "CATEGORIES",
    "CheckResult",
    "Decoded",
    "Entry",
    "calls_match_bfcl",
    "category_of",
    "check",
    "decode",
    "encode_python",
    "encode_tool_call_tags",
    "has_call",
    "is_call_format",
    "language_of",
    "load_category",
    "load_entries",
]
