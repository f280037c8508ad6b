"""Scenario plans: which kind of conversation a dialogue is, over which tools, in which order.

The structure of a plan -- the scenario, the tools offered, which calls happen in which turn, which
required value the user leaves out -- is decided here, deterministically from the dialogue's
number and the run's seed. The planner agent only writes the content: the user's goal and the
argument values. That split keeps every scenario type covered in the configured mix, even with a
small generator, and makes a re-run plan the same dialogue.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any, Literal

from looptool.agents.personas import personas
from looptool.config import SCENARIOS, SeedConfig
from looptool.schema import Action, Plan, PlannedCall, PlanTurn, ToolSpec, stable_id


def dialogue_id(seed: int, index: int) -> str:
    return stable_id("d", "seed", seed, index)


def scenario_sequence(mix: dict[str, float], n: int) -> list[str]:
    """`n` scenarios whose every prefix follows the mix as closely as possible (largest deficit
    first), so a small run still covers each type with a positive weight."""
    weights = {s: mix.get(s, 0.0) for s in SCENARIOS if mix.get(s, 0.0) > 0}
    total = sum(weights.values())
    counts = dict.fromkeys(weights, 0)
    out = []
    for i in range(n):
        pick = max(weights, key=lambda s: (weights[s] / total * (i + 1) - counts[s], weights[s]))
        counts[pick] += 1
        out.append(pick)
    return out


def is_heldout_index(index: int, fraction: float) -> bool:
    """Every 1/fraction-th dialogue is a held-out one (spread evenly, not clustered)."""
    return int((index + 1) * fraction) > int(index * fraction)


def tool_split(name: str, fraction: float) -> Literal["train", "heldout"]:
    """Held-out or train, from a hash of the tool's name: stable across runs and machines."""
    u = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32
    return "heldout" if u < fraction else "train"


def stored_splits(records: Sequence[dict[str, Any]], splits: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The tool records with the "split" the stored samples give each tool they offer
    (`Store.sample_tool_splits`): "train" when any training sample offers it, else "heldout"."""
    return [{**r, "split": "train" if "train" in splits[r["name"]] else "heldout"} if splits.get(r["name"]) else r
            for r in records]


class NoToolsError(Exception):
    """The workspace has no tools to build dialogues from."""


def draft_plan(index: int, seed: int, config: SeedConfig, records: Sequence[dict[str, Any]]) -> tuple[Plan, list[ToolSpec]]:
    """The plan skeleton of dialogue `index` (arguments and goal still empty) and its tools.

    `records` are the workspace's tools (store.tool_records()). A held-out dialogue draws only
    held-out tools and a train dialogue only train tools, so held-out tools never reach training.
    A tool's split is a hash of its name (`tool_split`), or the "split" its record carries: the
    split the stored samples already give it (`stored_splits`; templated samples on the workspace's
    own tools draw their held-out tools by seed).
    """
    if not records:
        raise NoToolsError("the workspace has no tools; run 'looptool tools synth' or 'looptool tools import' first")
    rng = random.Random(f"plan:{seed}:{index}")
    scenario = scenario_sequence(config.scenario_mix, index + 1)[-1]
    pools = {split: [r for r in records if (r.get("split") or tool_split(r["name"], config.heldout_fraction)) == split]
             for split in ("train", "heldout")}
    # With no train tool at all (every tool hashed to held-out), every dialogue is a held-out one.
    heldout = is_heldout_index(index, config.heldout_fraction) or not pools["train"]
    split = "heldout" if pools["heldout"] and heldout else "train"
    pool = pools[split]

    if scenario == "single":
        size = 1
    elif scenario == "multiple":
        size = max(3, rng.randint(config.min_tools, config.max_tools))
    else:
        size = max(2 if scenario == "sequential" else 1, rng.randint(config.min_tools, config.max_tools))
    needs_required = scenario == "missing_argument"
    offered = _pick_tools(pool, size, rng, needs_required)
    specs = [r["spec"] for r in offered]
    target = _target(specs, rng, needs_required)

    turns: list[PlanTurn]
    if scenario in ("single", "multiple"):
        turns = [_task([[target]], rng)]
    elif scenario == "parallel":
        others = [s for s in specs if s is not target]
        n_calls = rng.choice((2, 2, 3))
        group = [target] + [rng.choice([target, *others]) for _ in range(n_calls - 1)]
        turns = [_task([group], rng)]
    elif scenario == "sequential":
        second = rng.choice([s for s in specs if s is not target] or [target])
        turns = [_task([[target], [second]], rng)]
    elif scenario == "missing_argument":
        required = target.parameters.get("required", [])
        withheld = [rng.choice(required)] if required else []
        turns = [
            PlanTurn(kind="task", withhold=withheld, actions=[Action(kind="ask", missing=withheld)]),
            PlanTurn(kind="follow_up", actions=[Action(kind="call", calls=[PlannedCall(tool=target.name)]), Action(kind="reply")]),
        ]
    else:  # irrelevant
        turns = [PlanTurn(kind="off_topic", actions=[Action(kind="reply")])]

    if rng.random() < config.chit_chat_rate:
        chat = PlanTurn(kind="chit_chat", actions=[Action(kind="reply")])
        turns = [chat, *turns] if rng.random() < 0.5 else [*turns, chat]
    plan = Plan(scenario=scenario, split=split, tools=[s.name for s in specs], persona=rng.choice(personas()), turns=turns)
    return plan, specs


def _task(call_groups: list[list[ToolSpec]], rng: random.Random) -> PlanTurn:
    actions = [Action(kind="call", calls=[PlannedCall(tool=s.name) for s in group]) for group in call_groups]
    return PlanTurn(kind="task", actions=[*actions, Action(kind="reply")])


def _pick_tools(pool: list[dict[str, Any]], size: int, rng: random.Random, needs_required: bool) -> list[dict[str, Any]]:
    """`size` tools, from one domain where it has enough, topped up from other domains."""
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for r in pool:
        by_domain.setdefault(r["domain"], []).append(r)
    candidates = sorted(by_domain)
    if needs_required:
        with_required = [d for d in candidates if any(r["spec"].parameters.get("required") for r in by_domain[d])]
        candidates = with_required or candidates
    domain = rng.choice(candidates)
    home = by_domain[domain][:]
    rng.shuffle(home)
    if needs_required:  # the tool the user leaves a value out of comes first
        home.sort(key=lambda r: not r["spec"].parameters.get("required"))
    picked = home[:size]
    rest = [r for r in pool if r["domain"] != domain]
    rng.shuffle(rest)
    picked += rest[: size - len(picked)]
    rng.shuffle(picked)
    return picked


def _target(specs: list[ToolSpec], rng: random.Random, needs_required: bool) -> ToolSpec:
    if needs_required:
        with_required = [s for s in specs if s.parameters.get("required")]
        if with_required:
            return rng.choice(with_required)
    return rng.choice(specs)
