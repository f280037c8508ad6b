"""The benchmarks' category names (BFCL-v3, ACEBench) and the one parser of each category list.

The config checks `[loop] eval_bfcl_categories` / `eval_acebench_categories` at load, the CLI its
`--categories` option, the loop and the TUI what a round evaluates: all through the two parsers
here, which sit below the config so that it need not import the evaluation package.
"""

from __future__ import annotations

from looptool.errors import ConfigError

# BFCL-v3, leaderboard order: non-live AST, irrelevance, then the live ("user-contributed") categories.
BFCL_CATEGORIES: tuple[str, ...] = (
    "simple",
    "multiple",
    "parallel",
    "parallel_multiple",
    "java",
    "javascript",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
)
# Multi-turn categories (200 entries each) are loaded and scored by their own modules
# (eval.bfcl_multi_turn_data, eval.bfcl_multi_turn): their entries are conversations run against
# BFCL's executable backends, not single questions. `BFCL_CATEGORIES` stays the single-turn list.
BFCL_MULTI_TURN_CATEGORIES: tuple[str, ...] = (
    "multi_turn_base",
    "multi_turn_miss_func",
    "multi_turn_miss_param",
    "multi_turn_long_context",
)
BFCL_ALL_CATEGORIES: tuple[str, ...] = BFCL_CATEGORIES + BFCL_MULTI_TURN_CATEGORIES  # the 17 of the v3 leaderboard

# ACEBench (English), in its own order (category.py, "normal" then "special").
ACEBENCH_NORMAL_CATEGORIES: tuple[str, ...] = (
    "normal_single_turn_single_function",
    "normal_single_turn_parallel_function",
    "normal_multi_turn_user_adjust",
    "normal_multi_turn_user_switch",
    "normal_similar_api",
    "normal_preference",
    "normal_atom_bool",
    "normal_atom_enum",
    "normal_atom_number",
    "normal_atom_list",
    "normal_atom_object_deep",
    "normal_atom_object_short",
)
ACEBENCH_SPECIAL_CATEGORIES: tuple[str, ...] = ("special_incomplete", "special_error_param", "special_irrelevant")
ACEBENCH_CATEGORIES: tuple[str, ...] = ACEBENCH_NORMAL_CATEGORIES + ACEBENCH_SPECIAL_CATEGORIES
ACEBENCH_MULTI_TURN_CATEGORIES: tuple[str, ...] = ("normal_multi_turn_user_adjust", "normal_multi_turn_user_switch")
ACEBENCH_AGENT_CATEGORIES: tuple[str, ...] = ("agent_multi_turn", "agent_multi_step")  # not run here
# Category groups that --categories accepts as shorthands, as ACEBench's own eval does.
ACEBENCH_GROUPS: dict[str, tuple[str, ...]] = {
    "normal": ACEBENCH_NORMAL_CATEGORIES, "special": ACEBENCH_SPECIAL_CATEGORIES,
    "atom": tuple(c for c in ACEBENCH_NORMAL_CATEGORIES if "_atom_" in c),
    "multi_turn": ACEBENCH_MULTI_TURN_CATEGORIES,
}


def _names(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise ConfigError("--categories: no category given")
    return names


def parse_bfcl_categories(text: str | None) -> list[str]:
    """"simple,multi_turn_base" -> ["simple", "multi_turn_base"]; None or "all" -> all 17 categories
    of the v3 leaderboard, the four multi-turn ones included; checked."""
    if not text or text.strip() == "all":
        return list(BFCL_ALL_CATEGORIES)
    names = _names(text)
    for name in names:
        if name not in BFCL_ALL_CATEGORIES:
            raise ConfigError(f"--categories: unknown BFCL category {name!r}; categories are: "
                              f"{', '.join(BFCL_CATEGORIES)}, and the multi-turn {', '.join(BFCL_MULTI_TURN_CATEGORIES)}")
    return list(dict.fromkeys(names))


def parse_acebench_categories(text: str | None) -> list[str]:
    """"normal_atom_bool,special" -> categories; groups (normal, special, atom, multi_turn) expand;
    None or "all" -> every Normal and Special category; agent categories are refused."""
    if not text or text.strip() == "all":
        return list(ACEBENCH_CATEGORIES)
    out: list[str] = []
    for name in _names(text):
        if name in ACEBENCH_AGENT_CATEGORIES or name == "agent":
            raise ConfigError(f"--categories: {name}: the agent categories need ACEBench's sandbox and a user "
                              "simulator, which are not part of this evaluation")
        if name not in ACEBENCH_CATEGORIES and name not in ACEBENCH_GROUPS:
            raise ConfigError(f"--categories: unknown ACEBench category {name!r}; categories are: "
                              f"{', '.join(ACEBENCH_CATEGORIES)} (or the groups {', '.join(ACEBENCH_GROUPS)})")
        out += ACEBENCH_GROUPS.get(name, (name,))
    return list(dict.fromkeys(out))
