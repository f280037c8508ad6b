"""ACEBench-en scorer: oracle pass count, speed, and (optionally) agreement with ACEBench's own scorer.

For every Normal and Special entry that ships with LoopTool (973), writes each possible answer
as a model answering ACEBench's prompt would (`[ApiName(key='value', ...)]`; for the Special
categories the sentence the prompt asks for), and changes it in seeded random ways: a wrong
value, a dropped, extra, repeated or renamed call, shuffled calls, an extra or missing parameter,
a missing key or item inside a value, a value of the wrong type, a positional argument, an
unquoted string, JSON-style `true`, a value written as arithmetic or with a `+` sign, changed
case, prose or line breaks around the list, a tuple instead of the list; for the Special
categories plain text, a missing name or value, changed case, a call instead of the sentence,
prose around it. Scores every output with LoopTool's scorer (`acebench_suite.score_answer`, the
"acebench" prompt format) and prints how many oracle outputs pass, which entries fail their own
answer and why, passes per kind of output, and the CPU time.

With --official, also scores every output with ACEBench's eval_main.py -- its
normal_single_turn_eval, normal_multi_turn_eval and special_eval, fed one output at a time as its
runner feeds a category's result file (the score file and spreadsheet they write are caught
instead of written) -- and prints how often the two verdicts agree. DIR is a checkout of ACEBench.
LoopTool's data and reader follow commit 56dd66cf of the authors' current repository:

    git clone https://github.com/chenchen0103/ACEBench && git -C ACEBench checkout 56dd66cf
    python benchmarks/acebench_checker.py --official ACEBench [--mutations 4] [--seed 0]

The earlier repository (`git clone https://github.com/ACEBench/ACEBench`, last commit e6db74b of
2025-08-24) works as DIR too; its eval_main.py reads single-turn answers the old way (all
whitespace deleted, no text around the list allowed), which the script prints, so its verdicts
differ there. Both sides are fed LoopTool's shipped entries, whatever data DIR holds. The official
side needs no install: pandas and openpyxl, which only its spreadsheet report uses, are stood in
for when missing.

ACEBench's reader `eval`s arithmetic found in an answer; the outputs below are built by this
script from the shipped answers, so do not point it at untrusted outputs.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import random
import re
import sys
import textwrap
import time
import types
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looptool.eval.acebench_checker import check_normal
from looptool.eval.acebench_data import CATEGORIES, Entry, category_of, default_data_dir, load_category
from looptool.eval.acebench_decode import decode
from looptool.eval.acebench_suite import score_answer
from looptool.eval.runner import EvalItem, score_safely

NORMAL_MUTATIONS = ("wrong_value", "drop_call", "extra_call", "swap_order", "extra_param", "missing_param",
                    "wrong_type", "wrong_name", "positional_arg", "bare_name", "json_bool", "prose_around",
                    "line_breaks", "changed_case", "arithmetic", "unary_plus", "repeat_call", "tuple_body",
                    "drop_nested")
SPECIAL_MUTATIONS = ("plain_text", "drop_item", "changed_case", "call_instead", "prose_around")


# -- ACEBench's answer format ---------------------------------------------------------------------


class Bare(str):
    """Source text written as is: an unquoted string (`city=Paris`), an expression (`2 * 3`)."""


@dataclass
class Call:
    name: str
    args: list[tuple[str | None, Any]]  # a None key is a positional argument


def answer_calls(answer: dict) -> list[Call]:
    """A possible answer `{name_1: {param: value}}` -> calls; the `_<digits>` that keeps a
    repeated name unique in the answer is not part of the API name."""
    return [Call(re.sub(r"_\d+$", "", name), list(args.items())) for name, args in answer.items()]


def literal(value: Any, json_bools: bool = False) -> str:
    if isinstance(value, Bare):
        return str(value)
    if isinstance(value, bool):
        return ("true" if value else "false") if json_bools else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v, json_bools) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(literal(v, json_bools) + ", " for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v, json_bools)}" for k, v in value.items()) + "}"
    return repr(value)


def render(calls: list[Call], json_bools: bool = False, line_breaks: bool = False) -> str:
    def one(call: Call) -> str:
        args = [literal(v, json_bools) if k is None else f"{k}={literal(v, json_bools)}" for k, v in call.args]
        if line_breaks:
            return f"{call.name}(\n" + "".join(f"        {a},\n" for a in args) + "    )"
        return f"{call.name}({', '.join(args)})"

    if line_breaks:
        return "[\n" + "".join(f"    {one(c)},\n" for c in calls) + "]"
    return "[" + ", ".join(one(c) for c in calls) + "]"


def special_reply(entry: Entry) -> str:
    """The sentence ACEBench's Special prompt asks for, filled from the possible answer."""
    truth = entry.ground_truth
    if entry.category == "special_incomplete":
        (name, params), = truth.items()  # one API per entry in the shipped data
        return f'["Missing necessary parameters ({", ".join(params)}) for the api ({name})"]'
    if entry.category == "special_error_param":
        values = ", ".join(v for vs in truth.values() for v in vs)
        keys = ", ".join(truth)
        return f'["There is incorrect value ({values}) for the parameters ({keys}) in the conversation history."]'
    return f'["{truth}"]'


# -- mutations ------------------------------------------------------------------------------------


def leaves(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths to the plain values inside a value (list items, dict values), the value itself if plain."""
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaves(v, path + (k,))]
    if isinstance(value, list) and value:
        return [p for i, v in enumerate(value) for p in leaves(v, path + (i,))]
    return [path]


def all_paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths to the value and to everything inside it."""
    inner = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [path] + [p for k, v in inner for p in all_paths(v, path + (k,))]


def replace_at(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    value = copy.copy(value)
    value[path[0]] = replace_at(value[path[0]], path[1:], new)
    return value


def wrong_value(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + rng.choice((1, 10))
    if isinstance(value, str):
        # A cut or an unrelated value fails; one the answer is a substring of passes upstream.
        return rng.choice((value[: len(value) // 2], "Unknown", value + " Plus"))
    if isinstance(value, list):
        return value + ["extra"]
    if isinstance(value, dict):
        return {**value, "extra": "x"}
    return "x"


def wrong_type(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return rng.choice(("yes", 1, None))
    if isinstance(value, int):
        return rng.choice((str(value), float(value), None))  # 5.0 for 5 passes upstream: it equals
    if isinstance(value, float):
        return rng.choice((str(value), None))
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return rng.choice((tuple(value), ", ".join(map(str, value))))
    if isinstance(value, dict):
        return [value]
    return 0


def written_as_expression(value: Any, kind: str) -> Bare | None:
    """A plain value as an expression that means the same in Python: `2 + 3` for 5, `'Par' + 'is'`
    for "Paris", `[1] + [2]` for [1, 2]; or `+5` for 5 (which ACEBench's reader negates)."""
    if kind == "unary_plus":
        return Bare(f"+{value!r}") if type(value) in (int, float) else None
    if type(value) is int:
        return Bare(f"{value - 3} + 3")
    if type(value) is float:
        return Bare(f"{value * 2!r} / 2")
    if isinstance(value, str) and len(value) > 1:
        return Bare(f"{value[:1]!r} + {value[1:]!r}")
    if isinstance(value, list) and len(value) > 1:
        return Bare(f"{literal(value[:1])} + {literal(value[1:])}")
    return None


def schema_properties(entry: Entry, name: str) -> dict:
    for function in entry.functions:
        if function.get("name") == name:
            return (function.get("parameters") or {}).get("properties") or {}
    return {}


def mutate_normal(entry: Entry, calls: list[Call], kind: str, rng: random.Random) -> str | None:
    """One kind of change to an oracle answer; None when it does not apply to this answer."""
    calls = [Call(c.name, list(c.args)) for c in calls]
    with_args = [c for c in calls if c.args]
    call = rng.choice(with_args) if with_args else None
    i = rng.randrange(len(call.args)) if call else 0
    if kind == "wrong_value" and call:
        key, value = call.args[i]
        path = rng.choice(leaves(value))
        call.args[i] = (key, replace_at(value, path, wrong_value(_at(value, path), rng)))
    elif kind == "wrong_type" and call:
        key, value = call.args[i]
        call.args[i] = (key, wrong_type(value, rng))
    elif kind == "missing_param" and call:
        del call.args[i]
    elif kind == "positional_arg" and call:
        call.args.insert(0, (None, call.args.pop(i)[1]))
    elif kind == "extra_param":
        target = rng.choice(calls)
        given = {k for k, _ in target.args}
        unused = [p for p in schema_properties(entry, target.name) if p not in given]
        # A schema parameter the answer leaves out fails as an unknown one does.
        target.args.append((rng.choice(unused) if unused and rng.random() < 0.7 else "unexpected_param", "x"))
    elif kind == "drop_call":
        calls.pop(rng.randrange(len(calls)))
    elif kind == "extra_call":
        others = [f["name"] for f in entry.functions if f["name"] not in {c.name for c in calls}]
        if others and rng.random() < 0.5:
            calls.insert(rng.randrange(len(calls) + 1), Call(rng.choice(others), []))
        else:
            calls.insert(rng.randrange(len(calls) + 1), copy.deepcopy(rng.choice(calls)))
    elif kind == "swap_order":
        rng.shuffle(calls)
        for c in calls:
            rng.shuffle(c.args)
    elif kind == "wrong_name":
        target = rng.choice(calls)
        target.name = rng.choice((target.name + "_v2", target.name.lower(), target.name.upper()))
    elif kind == "bare_name":
        spots = [(c, j) for c in calls for j, (k, v) in enumerate(c.args) if isinstance(v, str) and v.isidentifier()]
        if not spots:
            return None
        c, j = rng.choice(spots)
        c.args[j] = (c.args[j][0], Bare(c.args[j][1]))
    elif kind == "json_bool":
        if "True" not in render(calls) and "False" not in render(calls):
            return None
        return render(calls, json_bools=True)
    elif kind == "changed_case" and call:
        key, value = call.args[i]
        path = rng.choice(leaves(value))
        leaf = _at(value, path)
        if not isinstance(leaf, str) or leaf.swapcase() == leaf:
            return None
        call.args[i] = (key, replace_at(value, path, leaf.swapcase()))
    elif kind in ("arithmetic", "unary_plus") and call:
        key, value = call.args[i]
        path = rng.choice(all_paths(value))
        expression = written_as_expression(_at(value, path), kind)
        if expression is None:
            return None
        call.args[i] = (key, replace_at(value, path, expression))
    elif kind == "repeat_call":
        # One call in place of another of the same name: upstream's matching is not one-to-one.
        pairs = [(a, b) for a in range(len(calls)) for b in range(len(calls))
                 if a != b and calls[a].name == calls[b].name]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
        calls[b] = copy.deepcopy(calls[a])
    elif kind == "drop_nested" and call:
        key, value = call.args[i]
        paths = [p for p in all_paths(value) if p]
        if not paths:
            return None
        path = rng.choice(paths)
        parent = _at(value, path[:-1])
        parent = {k: v for k, v in parent.items() if k != path[-1]} if isinstance(parent, dict) \
            else [v for j, v in enumerate(parent) if j != path[-1]]
        call.args[i] = (key, replace_at(value, path[:-1], parent))
    elif kind == "tuple_body":
        return "(" + render(calls)[1:-1] + ("," if len(calls) == 1 else "") + ")"
    elif kind == "prose_around":
        return f"Sure, here is the call:\n```python\n{render(calls)}\n```\nLet me know if you need more."
    elif kind == "line_breaks":
        return render(calls, line_breaks=True)
    else:
        return None
    return render(calls)


def _at(value: Any, path: tuple) -> Any:
    for step in path:
        value = value[step]
    return value


def mutate_special(entry: Entry, kind: str, rng: random.Random) -> str | None:
    reply = special_reply(entry)
    if kind == "plain_text":
        return rng.choice(("I am sorry, I cannot help with that.", "Could you tell me more about what you need?"))
    if kind == "drop_item":
        if entry.category == "special_irrelevant":
            return None
        items = [n for n in entry.ground_truth] if entry.category == "special_incomplete" else []
        items += [v for vs in entry.ground_truth.values() for v in vs]
        return reply.replace(rng.choice(items), "", 1)
    if kind == "changed_case":
        return reply.swapcase()
    if kind == "call_instead":
        function = rng.choice(entry.functions)
        return f"[{function['name']}()]"
    if kind == "prose_around":
        return f"I checked the request.\n{reply}\nPlease advise."
    return None


def outputs_for(entry: Entry, mutations: int, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, output text) pairs: every oracle answer, then `mutations` random changes."""
    if entry.is_special:
        out = [("oracle", special_reply(entry))]
        kinds, make = SPECIAL_MUTATIONS, lambda kind: mutate_special(entry, kind, rng)
    else:
        answers = entry.ground_truth if isinstance(entry.ground_truth, list) else [entry.ground_truth]
        out = [("oracle", render(answer_calls(a))) for a in answers]
        kinds = NORMAL_MUTATIONS
        make = lambda kind: mutate_normal(entry, answer_calls(rng.choice(answers)), kind, rng)  # noqa: E731
    wanted = len(out) + mutations
    while len(out) < wanted:
        kind = rng.choice(kinds)
        text = make(kind)
        if text is not None:
            out.append((kind, text))
    return out


# -- the two scorers ------------------------------------------------------------------------------


def looptool_passes(entry: Entry, output: str) -> tuple[bool, str | None]:
    """LoopTool's verdict and error type (an exception fails the entry, as in a real run)."""
    scored = score_safely(EvalItem(entry.id, entry.category, [], lambda t: score_answer(entry, t, "acebench")), output)
    return scored.passed, scored.error_type


class Official:
    """ACEBench's eval_main.py, its category functions called as its runner calls them."""

    MODEL = "looptool-bench"  # no "FC" in it: ACEBench then reads answers as text, not as JSON calls

    def __init__(self, source_dir: str):
        for name, attributes in (("pandas", ()), ("openpyxl", ("Workbook",)), ("openpyxl.styles", ("Alignment",))):
            try:
                importlib.import_module(name)
            except ImportError:  # only the spreadsheet report uses them, and it is not run here
                stub = types.ModuleType(name)
                for attribute in attributes:
                    setattr(stub, attribute, None)
                sys.modules[name] = stub
        sys.path.insert(0, source_dir)
        self.main = importlib.import_module("eval_main")
        self.written: list[dict] = []
        # Catch the score file instead of writing it; skip the spreadsheet.
        self.main.save_score_as_json = lambda name, rows, folder=None: self.written.extend(rows[:1])
        self.main.convert_result_to_excel = lambda *args: None
        self.main.OUTPUT_PATH = "scores"
        self.crashes: Counter[str] = Counter()
        # ACEBench changed this on 2025-10-23 (its commit 5b6e4de); LoopTool reads as the newer one does.
        reads_first_list = hasattr(self.main, "extract_outermost_bracket_content")
        self.single_turn_reader = ("the first [...] of the text, as LoopTool's" if reads_first_list
                                   else "all whitespace deleted, then the whole text (ACEBench before 2025-10-23)")

    def passes(self, entry: Entry, output: str) -> bool:
        prompt = [{"id": entry.id, "question": entry.question, "function": copy.deepcopy(entry.functions)}]
        answer = [{"id": entry.id, "ground_truth": copy.deepcopy(entry.ground_truth)}]
        result = [{"id": entry.id, "result": output}]
        if entry.is_special:
            score = self.main.special_eval
        elif "normal_multi_turn" in entry.category:
            score = self.main.normal_multi_turn_eval
        else:
            score = self.main.normal_single_turn_eval
        self.written.clear()
        try:
            score(result, prompt, answer, entry.category, self.MODEL, {})
        except Exception as exc:  # noqa: BLE001 - upstream stops the whole run; counted, then a failure
            self.crashes[type(exc).__name__] += 1
            return False
        return self.written[0]["correct_count"] == 1


def data_files_matching(source_dir: str) -> tuple[int, int]:
    """How many of LoopTool's shipped data files are byte-identical to DIR's data_all/data_en ones."""
    ours = default_data_dir()
    names = [p.relative_to(ours) for p in ours.rglob("data_*.json")]
    same = sum((Path(source_dir, "data_all", "data_en", n).is_file()
                and Path(source_dir, "data_all", "data_en", n).read_bytes() == (ours / n).read_bytes()) for n in names)
    return same, len(names)


# -- the report -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", metavar="DIR", help="checkout of ACEBench to compare with")
    parser.add_argument("--mutations", type=int, default=4, help="mutated outputs per entry")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    official = Official(args.official) if args.official else None

    entries = [e for c in CATEGORIES for e in load_category(c)]
    cases = [(entry, kind, text) for entry in entries for kind, text in outputs_for(entry, args.mutations, rng)]

    started = time.process_time()
    verdicts = [looptool_passes(entry, text) for entry, _, text in cases]
    cpu = time.process_time() - started
    print(f"entries: {len(entries)} in {len(CATEGORIES)} categories; outputs scored: {len(cases)} in {cpu:.2f} s CPU "
          f"({len(cases) / cpu:,.0f} outputs/s)")

    oracle = [(entry, ok) for (entry, kind, _), (ok, _) in zip(cases, verdicts) if kind == "oracle"]
    passing_ids = {entry.id for entry, ok in oracle if ok}
    failing = list({entry.id: entry for entry, _ in oracle if entry.id not in passing_ids}.values())
    print(f"oracle outputs passed: {sum(ok for _, ok in oracle)}/{len(oracle)}; entries whose own answer fails: "
          f"{len(failing)}")
    by_reason: dict[str, list[str]] = {}
    for entry in failing:
        by_reason.setdefault(why_oracle_fails(entry), []).append(entry.id)
    for reason, ids in by_reason.items():
        say(f"  {len(ids)} {reason}: {compact(ids)}")

    passed_by_kind = Counter(kind for (_, kind, _), (ok, _) in zip(cases, verdicts) if ok)
    total_by_kind = Counter(kind for _, kind, _ in cases)
    say("passed per kind: " + ", ".join(f"{k} {passed_by_kind[k]}/{n}" for k, n in sorted(total_by_kind.items())))

    if official is not None:
        same, files = data_files_matching(args.official)
        started = time.process_time()
        theirs = [official.passes(entry, text) for entry, _, text in cases]
        official_cpu = time.process_time() - started
        differ = [(entry.id, kind, ours) for (entry, kind, _), (ours, _), other in zip(cases, verdicts, theirs)
                  if ours != other]
        say(f"official scorer: {official_cpu:.2f} s CPU; crashed on {sum(official.crashes.values())} outputs"
              + (f" ({', '.join(f'{n} {k}' for k, n in official.crashes.items())})" if official.crashes else "")
              + f"; its data_all/data_en matches the shipped data in {same}/{files} files")
        print(f"official single-turn reader: {official.single_turn_reader}")
        print(f"agreement with ACEBench's official scorer: {len(cases) - len(differ)}/{len(cases)}")
        if differ:
            per_kind = Counter(kind for _, kind, _ in differ)
            say("disagreements per kind: " + ", ".join(f"{k} {n}" for k, n in sorted(per_kind.items())))
        for entry_id, kind, ours in differ[:30]:
            print(f"  differ: {entry_id} ({kind}): LoopTool {'pass' if ours else 'fail'}")
        if len(differ) > 30:
            print(f"  ... and {len(differ) - 30} more")


def say(line: str) -> None:
    print(textwrap.fill(line, 118, subsequent_indent="    ", break_on_hyphens=False, break_long_words=False))


def compact(ids: list[str]) -> str:
    """normal_atom_bool_3, normal_atom_bool_7 -> normal_atom_bool_{3, 7}"""
    by_category: dict[str, list[str]] = {}
    for entry_id in ids:
        category = category_of(entry_id)
        by_category.setdefault(category, []).append(entry_id[len(category) + 1:])
    return "; ".join(f"{c}_{{{', '.join(tails)}}}" if len(tails) > 1 else f"{c}_{tails[0]}"
                     for c, tails in by_category.items())


def why_oracle_fails(entry: Entry) -> str:
    """Why an entry's own answer fails, and whether any output can pass it."""
    answers = entry.ground_truth if isinstance(entry.ground_truth, list) else [entry.ground_truth]
    for answer in answers:
        decoded = decode(render(answer_calls(answer)), multi_turn=False)
        if entry.is_multi_turn and decoded.calls is not None and check_normal(entry, decoded.calls).valid:
            return ("fail as the multi-turn reader deletes the spaces of a string in a list in an object; only "
                    "outputs writing them `\\x20` pass")
        for call in answer_calls(answer):
            required = [f for f in entry.functions if f["name"] == call.name][0]["parameters"]["required"]
            for key, value in call.args:
                if key not in required:
                    shorter = [Call(c.name, [a for a in c.args if a[0] != key]) for c in answer_calls(answer)]
                    if looptool_passes(entry, render(shorter))[0]:
                        return f"fail on their optional {key}={value!r}; outputs without it pass"
    return "fail for a reason this script does not name"


if __name__ == "__main__":
    main()
