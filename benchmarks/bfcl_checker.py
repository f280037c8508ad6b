"""BFCL-v3 checker speed on the ground-truth "oracle" answers, and (optionally) agreement with the
official checker, on those answers or on a file of real model outputs.

For each of the ten AST categories, builds the answer a perfect model would give (the first
accepted value of each parameter; Java/JavaScript values as literals), then times
  1. check() on the decoded call lists (the scoring step alone), and
  2. decode() + check() from the same answers written as <tool_call> blocks (what scoring a
     native tool-calling model costs per entry),
and prints entries checked per second for both, the pass count per category, and the ids that
fail (entries whose ground truth contradicts its own function docs; no output can pass them).
Needs nothing but looptool: no model, no server, no network.

With --official DIR (the unzipped bfcl-eval 2025.8.6.2 wheel; its source only, nothing
installed), the same oracle answers are also scored by BFCL's own `ast_checker`, and the
agreement is printed. With --outputs FILE [FILE ...] (the format `looptool eval bfcl --outputs`
reads: one `{"id": ..., "output": "<raw model text>"}` line per entry), real model outputs are
scored instead, single-turn ids only: every distinct (id, output) pair over the files once.

  * Verdicts: each raw text is decoded once, by this project's decoder (`--format`, as the run
    that produced it was configured), and the same decoded calls go to both checkers, the
    official one fed as its eval runner feeds it (`ast_file_runner` / `relevance_file_runner`,
    with the decode step replaced). Agreement and every disagreement are printed by id.
  * Decode stage, separately: the official pipeline decodes a native tool-calling model's text
    with its handler's `decode_ast`; for `<tool_call>` blocks that is the Qwen FC handler's
    (`QwenFCHandler.decode_ast`, copied below). Printed: how often its calls differ from this
    project's decoding, and the end-to-end verdicts (each side with its own decoder) that differ.

    pip download --no-deps bfcl-eval==2025.8.6.2 -d bfcl-wheel && unzip -q bfcl-wheel/*.whl -d bfcl-wheel/src
    python benchmarks/bfcl_checker.py --official bfcl-wheel/src [--outputs answers.jsonl ...]

Usage: python benchmarks/bfcl_checker.py [--repeat 5] [--official DIR [--outputs FILE ...]]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
import types
from collections import Counter
from pathlib import Path

from looptool.eval.bfcl_checker import check
from looptool.eval.bfcl_data import CATEGORIES, NO_GROUND_TRUTH, Entry, language_of, load_category, load_entries
from looptool.eval.bfcl_decode import decode, encode_tool_call_tags, oracle_calls
from looptool.eval.bfcl_multi_turn_data import is_multi_turn_id
from looptool.eval.bfcl_suite import read_outputs, score_answer

OFFICIAL_MODEL = "Qwen/Qwen3-8B-FC"  # the BFCL model whose handler reads <tool_call> blocks
OFFICIAL_LANGUAGE = {"python": "Python", "java": "Java", "javascript": "JavaScript"}


def timed(fn, repeat: int) -> tuple[float, object]:
    """Best of `repeat` runs (seconds), and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


class Official:
    """BFCL's single-turn checker (bfcl-eval 2025.8.6.2), loaded from the unzipped wheel's source."""

    def __init__(self, source_dir: str):
        sys.path.insert(0, source_dir)
        # ast_checker imports MODEL_CONFIG_MAPPING only to ask whether a model's function names
        # have their dots replaced (`underscore_to_dot`); the real mapping imports every provider
        # SDK. A stand-in holding the Qwen FC entry's value (False) answers the same.
        stub = types.ModuleType("bfcl_eval.constants.model_config")
        stub.MODEL_CONFIG_MAPPING = {OFFICIAL_MODEL: types.SimpleNamespace(underscore_to_dot=False)}
        sys.modules["bfcl_eval.constants.model_config"] = stub
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
        from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

        self.ast_checker, self.is_empty, self.is_call_format = (
            ast_checker, is_empty_output, is_function_calling_format_output)

    @staticmethod
    def decode_ast(text: str) -> list[dict]:
        """QwenFCHandler.decode_ast with its _extract_tool_calls (bfcl-eval 2025.8.6.2); raises
        where it raises (a block without "name", arguments that are not a dict)."""
        tool_calls = []
        for match in re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text, re.DOTALL):
            try:
                match = json.loads(match)
            except Exception:  # noqa: BLE001 - as the handler: a bad block stays a string
                pass
            tool_calls.append(match)
        if any(type(item) is not dict for item in tool_calls):
            return []
        return [{call["name"]: {k: v for k, v in call["arguments"].items()}} for call in tool_calls]

    def verdict(self, entry: Entry, decoded: list[dict] | None) -> tuple[bool, str | None]:
        """The official runner's verdict on decoded calls (None: the decoder raised)."""
        if entry.category in NO_GROUND_TRUTH:  # relevance_file_runner
            called = decoded is not None and not self.is_empty(decoded)
            ok = not called if "irrelevance" in entry.category else called
            kind = "irrelevance_error:decoder_success" if "irrelevance" in entry.category else \
                "relevance_error:decoder_failed"
            return ok, None if ok else kind
        if decoded is None:  # ast_file_runner
            return False, "ast_decoder:decoder_failed"
        if not self.is_call_format(decoded):
            return False, "ast_decoder:decoder_wrong_output_format"
        result = self.ast_checker(copy.deepcopy(entry.functions), copy.deepcopy(decoded),
                                  copy.deepcopy(entry.ground_truth), OFFICIAL_LANGUAGE[language_of(entry.category)],
                                  entry.category, OFFICIAL_MODEL)
        return bool(result["valid"]), None if result["valid"] else result.get("error_type")

    def safe_verdict(self, entry: Entry, decoded: list[dict] | None) -> tuple[bool | None, str | None]:
        """As `verdict`; an exception in the official checker (which would stop its whole run)
        comes back as (None, "raised: ...")."""
        try:
            return self.verdict(entry, decoded)
        except Exception as exc:  # noqa: BLE001
            return None, f"raised: {type(exc).__name__}: {exc}"[:160]

    def decode_and_verdict(self, entry: Entry, text: str) -> tuple[list[dict] | None, bool | None, str | None]:
        """The official pipeline end to end on a raw text: its decoder, then its checker."""
        try:
            decoded = self.decode_ast(text)
        except Exception:  # noqa: BLE001 - the runners count a raising decoder as a failed decode
            decoded = None
        return (decoded, *self.safe_verdict(entry, decoded))


def oracle_benchmark(repeat: int, official: Official | None) -> None:
    started = time.perf_counter()
    entries = [e for c in CATEGORIES if c not in NO_GROUND_TRUTH for e in load_category(c)]
    load_s = time.perf_counter() - started
    answers = [oracle_calls(e) for e in entries]
    texts = [encode_tool_call_tags(a) for a in answers]

    def check_decoded():
        return [check(e, a) for e, a in zip(entries, answers)]

    def decode_and_check():
        return [check(e, decode(t).calls) for e, t in zip(entries, texts)]

    dict_s, results = timed(check_decoded, repeat)
    text_s, text_results = timed(decode_and_check, repeat)
    assert [r.valid for r in results] == [r.valid for r in text_results], "text path disagrees with dict path"

    n = len(entries)
    print(f"entries: {n} in {len({e.category for e in entries})} categories (loaded in {load_s:.2f} s)")
    print(f"check (decoded calls):        {dict_s * 1e3:7.1f} ms  {n / dict_s:10,.0f} entries/s")
    print(f"decode <tool_call> + check:   {text_s * 1e3:7.1f} ms  {n / text_s:10,.0f} entries/s")
    print(f"passed: {sum(r.valid for r in results)}/{n}")
    for category in (c for c in CATEGORIES if c not in NO_GROUND_TRUTH):
        verdicts = [r.valid for e, r in zip(entries, results) if e.category == category]
        print(f"  {category:<24}{sum(verdicts):>5}/{len(verdicts)}")
    failing = [(e.id, r.error_type) for e, r in zip(entries, results) if not r.valid]
    print("failing ids:" + "".join(f"\n  {i}  ({t})" for i, t in failing))
    if official is not None:
        theirs = [official.safe_verdict(e, a)[0] for e, a in zip(entries, answers)]
        differ = [e.id for e, r, v in zip(entries, results, theirs) if r.valid != v]
        print(f"agreement with bfcl-eval's ast_checker: {n - len(differ)}/{n}"
              + "".join(f"\n  differ: {i}" for i in differ))


def _verdict_text(valid: bool | None, error_type: str | None) -> str:
    if valid is None:
        return f"official {error_type}"
    return "pass" if valid else f"fail ({error_type})"


def _excerpt(text: str, limit: int = 160) -> str:
    flat = json.dumps(text, ensure_ascii=False)
    return flat if len(flat) <= limit else flat[: limit - 4] + '..."'


def outputs_benchmark(paths: list[Path], official: Official, fmt: str, parallel_matching: str) -> None:
    pairs: dict[tuple[str, str], None] = {}
    lines, skipped = 0, 0
    for path in paths:
        for entry_id, output in read_outputs(path).items():
            lines += 1
            if is_multi_turn_id(entry_id):
                skipped += 1
                continue
            pairs.setdefault((entry_id, output), None)
    entries = load_entries(entry_id for entry_id, _ in pairs)
    missing = sorted({i for i, _ in pairs if i not in entries})
    if missing:
        raise SystemExit(f"ids not in the BFCL-v3 data: {', '.join(missing[:5])}")
    cases = sorted(pairs, key=lambda p: (CATEGORIES.index(entries[p[0]].category), p[0], p[1]))
    n = len(cases)
    print(f"outputs: {lines} lines in {len(paths)} file(s); distinct (id, output): {n} over "
          f"{len({i for i, _ in cases})} entries" + (f"; {skipped} multi-turn lines skipped" if skipped else ""))

    started = time.process_time()
    ours = []
    for entry_id, text in cases:
        entry = entries[entry_id]
        scored = score_answer(entry, text, fmt, parallel_matching)  # the suite's own scoring
        ours.append((scored.decoded, scored.passed, scored.error_type))
    ours_cpu = time.process_time() - started
    started = time.process_time()
    theirs = [official.safe_verdict(entries[i], calls) for (i, _), (calls, _, _) in zip(cases, ours)]
    theirs_cpu = time.process_time() - started
    failed_decode = sum(calls is None for calls, _, _ in ours)
    print(f"decoded with looptool ({fmt}): {n - failed_decode} ok, {failed_decode} failed; "
          f"CPU: looptool {ours_cpu:.2f} s, bfcl-eval {theirs_cpu:.2f} s")

    print("verdicts on the same decoded calls (category: looptool passed / bfcl-eval passed / agree):")
    for category in CATEGORIES:
        idx = [k for k, (i, _) in enumerate(cases) if entries[i].category == category]
        if idx:
            print(f"  {category:<24}{sum(ours[k][1] for k in idx):>5} /{sum(bool(theirs[k][0]) for k in idx):>5} /"
                  f"{sum(ours[k][1] == theirs[k][0] for k in idx):>5} of {len(idx)}")
    differ = [k for k in range(n) if ours[k][1] != theirs[k][0]]
    both_fail = [k for k in range(n) if ours[k][1] is False and theirs[k][0] is False]
    same_type = sum(ours[k][2] == theirs[k][1] for k in both_fail)
    print(f"agreement with bfcl-eval's ast_checker: {n - len(differ)}/{n} "
          f"(failing both, with the same error type: {same_type}/{len(both_fail)})")
    for k in differ:
        entry_id, text = cases[k]
        print(f"  differ: {entry_id}: looptool {_verdict_text(ours[k][1], ours[k][2])}, "
              f"bfcl-eval {_verdict_text(*theirs[k])}\n    output: {_excerpt(text)}")

    if fmt != "tool_call_tags":
        return
    end_to_end = [official.decode_and_verdict(entries[i], text) for i, text in cases]
    calls_differ = [k for k in range(n) if ours[k][0] != end_to_end[k][0]]
    kinds = Counter(_decode_difference(ours[k][0], end_to_end[k][0], cases[k][1]) for k in calls_differ)
    print(f"decode stage: bfcl-eval's Qwen FC decode_ast gives other calls than looptool's decoder on "
          f"{len(calls_differ)}/{n} outputs" + "".join(f"\n  {count:>5}  {kind}" for kind, count in kinds.most_common()))
    for k in calls_differ:  # the ones where one side reads calls the other does not
        if end_to_end[k][0]:
            entry_id, text = cases[k]
            reason = decode(text, fmt).error if ours[k][0] is None else f"looptool reads {len(ours[k][0])} call(s)"
            print(f"  decode differs: {entry_id}: bfcl-eval reads {len(end_to_end[k][0])} call(s); {reason}")
    verdict_differ = [k for k in range(n) if ours[k][1] != end_to_end[k][1]]
    by_category = Counter(entries[cases[k][0]].category for k in verdict_differ)
    where = ", ".join(f"{c} {by_category[c]}" for c in CATEGORIES if by_category[c])
    print(f"end to end (each side with its own decoder): verdicts differ on {len(verdict_differ)}/{n}"
          + (f" ({where})" if where else "")
          + f"; looptool passes {sum(o[1] for o in ours)}, bfcl-eval {sum(bool(e[1]) for e in end_to_end)}")
    for k in verdict_differ:
        entry_id, text = cases[k]
        print(f"  end-to-end differ: {entry_id}: looptool {_verdict_text(ours[k][1], ours[k][2])}, "
              f"bfcl-eval {_verdict_text(end_to_end[k][1], end_to_end[k][2])}  "
              f"[{_decode_difference(ours[k][0], end_to_end[k][0], text)}]")


def _decode_difference(ours: list[dict] | None, theirs: list[dict] | None, text: str) -> str:
    """A short name for why the two decoders disagree on a text."""
    if ours == theirs:
        return "same calls"
    if theirs is None:
        return "bfcl-eval's decoder raises (a block without name or dict arguments)"
    if ours is None:
        return "looptool fails to decode, bfcl-eval decodes" + (" no call" if not theirs else " calls")
    if not theirs and ours:
        if "<tool_call>" not in text:
            return "calls outside <tool_call> blocks (bare JSON or Python syntax): bfcl-eval reads none"
        return "<tool_call> blocks bfcl-eval does not read (no newline inside the tags, or bad JSON in one)"
    if not ours and theirs:
        return "looptool reads no call, bfcl-eval reads calls"
    return "both read calls, but different ones"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best is reported")
    parser.add_argument("--official", metavar="DIR", help="unzipped bfcl-eval 2025.8.6.2 wheel to compare with")
    parser.add_argument("--outputs", metavar="FILE", type=Path, nargs="+", action="extend",
                        help="real model outputs ({id, output} lines) to score with both checkers")
    parser.add_argument("--format", default="tool_call_tags", choices=("tool_call_tags", "python"),
                        help="the prompt format the outputs were produced in (default tool_call_tags)")
    parser.add_argument("--parallel-matching", default="greedy", choices=("greedy", "bipartite"))
    args = parser.parse_args()
    if args.outputs and not args.official:
        parser.error("--outputs needs --official DIR")
    official = Official(args.official) if args.official else None
    if args.outputs:
        outputs_benchmark(args.outputs, official, args.format, args.parallel_matching)
    else:
        oracle_benchmark(args.repeat, official)


if __name__ == "__main__":
    main()
