"""BFCL-v3 multi-turn checker: oracle pass count, speed, and (optionally) agreement with the official checker.

For every multi-turn entry (800), renders the ground truth as a model's output (each call a
`<tool_call>` block; one step per turn, or one step per call followed by a plain-text step) and
changes it in a few random ways (drop, duplicate, swap or move a call, change a value, add or drop
an argument, stringify a value, empty a turn). Prints how many oracle outputs pass, the CPU time
of scoring, and, with --official, how often this checker and BFCL's own `multi_turn_checker`
(bfcl-eval 2025.8.6.2) agree on the same outputs.

The official side needs the wheel's source only, not an install (its declared dependencies are
provider SDKs the checker never imports):

    pip download --no-deps bfcl-eval==2025.8.6.2 -d bfcl-wheel && unzip -q bfcl-wheel/*.whl -d bfcl-wheel/src
    python benchmarks/bfcl_multi_turn.py --official bfcl-wheel/src [--mutations 4] [--seed 0]

Its executor `eval`s call strings built from the outputs below, which this script generates
itself from the shipped ground truth; do not point it at untrusted outputs.
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import random
import re
import sys
import time
from collections import Counter

from looptool.calls import format_calls
from looptool.eval.bfcl_data import MULTI_TURN_CATEGORIES
from looptool.eval.bfcl_multi_turn import check_multi_turn
from looptool.eval.bfcl_multi_turn_data import MultiTurnEntry, load_multi_turn_category
from looptool.eval.bfcl_multi_turn_exec import BackendSession, ground_truth_call
from looptool.schema import ToolCall

MUTATIONS = ("drop", "duplicate", "swap", "move", "value", "extra_argument", "missing_argument", "stringify",
             "empty_turn")


def truth_calls(entry: MultiTurnEntry) -> list[list[ToolCall]]:
    session = BackendSession(entry)
    return [[ground_truth_call(session, text) for text in turn] for turn in entry.ground_truth]


def render(turns: list[list[ToolCall]], split_steps: bool) -> list[list[str]]:
    out = []
    for calls in turns:
        if not calls:
            out.append(["I cannot do that."])
        elif split_steps:
            out.append([format_calls([c], "tool_call_tags") for c in calls] + ["Done."])
        else:
            out.append([format_calls(calls, "tool_call_tags")])
    return out


def mutate(turns: list[list[ToolCall]], rng: random.Random) -> tuple[str, list[list[ToolCall]]]:
    turns = copy.deepcopy(turns)
    t = rng.choice([i for i, calls in enumerate(turns) if calls])
    i = rng.randrange(len(turns[t]))
    call, kind = turns[t][i], rng.choice(MUTATIONS)
    args = dict(call.arguments)
    key = rng.choice(sorted(args)) if args else None
    if kind == "drop":
        del turns[t][i]
    elif kind == "duplicate":
        turns[t].insert(i, call)
    elif kind == "swap":
        j = rng.randrange(len(turns[t]))
        turns[t][i], turns[t][j] = turns[t][j], turns[t][i]
    elif kind == "move" and t + 1 < len(turns):
        turns[t + 1].insert(0, turns[t].pop(i))
    elif kind == "value" and key is not None:
        value = args[key]
        if isinstance(value, bool):
            args[key] = not value
        elif isinstance(value, (int, float)):
            args[key] = value + 1
        elif isinstance(value, str):
            args[key] = value + "x"
        turns[t][i] = ToolCall(name=call.name, arguments=args)
    elif kind == "extra_argument":
        turns[t][i] = ToolCall(name=call.name, arguments={**args, "unexpected": 1})
    elif kind == "missing_argument" and key is not None:
        del args[key]
        turns[t][i] = ToolCall(name=call.name, arguments=args)
    elif kind == "stringify" and key is not None:
        turns[t][i] = ToolCall(name=call.name, arguments={**args, key: str(args[key])})
    elif kind == "empty_turn":
        turns[t] = []
    return kind, turns


class Official:
    """BFCL's own multi-turn checker, fed as its eval runner feeds it for the Qwen FC handler."""

    def __init__(self, source_dir: str):
        sys.path.insert(0, source_dir)
        from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_checker, multi_turn_utils
        from bfcl_eval.eval_checker.multi_turn_eval.func_source_code import long_context

        self.checker, self.is_empty = multi_turn_checker.multi_turn_checker, multi_turn_utils.is_empty_execute_response
        self.fixtures = long_context
        self.pristine = {n: pickle.dumps(v) for n, v in vars(long_context).items()
                         if not n.startswith("_") and isinstance(v, (list, dict))}
        self.runs = 0

    def decode_step(self, text: str) -> list[str]:
        """QwenFCHandler.decode_execute + convert_to_function_call (bfcl-eval 2025.8.6.2)."""
        items = []
        for match in re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text, re.DOTALL):
            try:
                match = json.loads(match)
            except Exception:  # noqa: BLE001 - as the handler: a bad block stays a string
                pass
            items.append(match)
        if any(type(item) is not dict for item in items):
            return []
        out = []
        for item in items:
            value = item["arguments"]
            if type(value) is str:
                value = json.loads(value)
            out.append(f"{item['name']}({','.join(f'{k}={v!r}' for k, v in value.items())})")
        return out

    def passes(self, entry: MultiTurnEntry, output: list[list[str]]) -> bool:
        # Fresh fixtures and a new model name per run: the official executor caches instances
        # per model name and id, and its fixtures carry over between entries.
        for name, pristine in self.pristine.items():
            current = getattr(self.fixtures, name)
            if isinstance(current, list):
                current[:] = pickle.loads(pristine)
            else:
                current.clear()
                current.update(pickle.loads(pristine))
        self.runs += 1
        if len(output) != len(entry.ground_truth):
            return False
        decoded = []
        for turn in output:
            steps = []
            for text in turn:
                try:
                    calls = self.decode_step(text)
                except Exception:  # noqa: BLE001 - the runner skips a step that fails to decode
                    continue
                if not self.is_empty(calls):
                    steps.append(calls)
            decoded.append(steps)
        test_entry = {"id": entry.id, "initial_config": entry.initial_config,
                      "involved_classes": entry.involved_classes}
        return self.checker(decoded, entry.ground_truth, test_entry, entry.category, f"bench{self.runs}")["valid"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", metavar="DIR", help="unzipped bfcl-eval 2025.8.6.2 wheel to compare with")
    parser.add_argument("--mutations", type=int, default=4, help="mutated outputs per entry")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    official = Official(args.official) if args.official else None

    entries = [e for c in MULTI_TURN_CATEGORIES for e in load_multi_turn_category(c)]
    cases = []
    for entry in entries:
        truth = truth_calls(entry)
        cases.append((entry, "oracle", render(truth, split_steps=False)))
        cases.append((entry, "oracle_split", render(truth, split_steps=True)))
        for _ in range(args.mutations):
            kind, turns = mutate(truth, rng)
            cases.append((entry, kind, render(turns, split_steps=rng.random() < 0.5)))

    started = time.process_time()
    verdicts = [check_multi_turn(entry, output).valid for entry, _, output in cases]
    cpu = time.process_time() - started
    oracle = [v for (_, kind, _), v in zip(cases, verdicts) if kind.startswith("oracle")]
    print(f"entries: {len(entries)}; outputs scored: {len(cases)} in {cpu:.2f} s CPU "
          f"({len(cases) / cpu:,.0f} outputs/s)")
    print(f"oracle outputs passed: {sum(oracle)}/{len(oracle)}")
    passed_by_kind = Counter(kind for (_, kind, _), v in zip(cases, verdicts) if v)
    total_by_kind = Counter(kind for _, kind, _ in cases)
    print("passed per kind: " + ", ".join(f"{k} {passed_by_kind[k]}/{n}" for k, n in sorted(total_by_kind.items())))
    if official is not None:
        theirs = [official.passes(entry, output) for entry, _, output in cases]
        differ = [(entry.id, kind) for (entry, kind, _), a, b in zip(cases, verdicts, theirs) if a != b]
        print(f"agreement with bfcl-eval's multi_turn_checker: {len(cases) - len(differ)}/{len(cases)}")
        for entry_id, kind in differ[:20]:
            print(f"  differ: {entry_id} ({kind})")


if __name__ == "__main__":
    main()
