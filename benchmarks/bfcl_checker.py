"""BFCL-v3 checker speed, on the ground-truth "oracle" answers of every entry that has ground truth.

For each of the ten AST categories, builds the answer a perfect model would give (the first
accepted value of each parameter; Java/JavaScript values as literals), then times
  1. check() on the decoded call lists (the scoring step alone), and
  2. decode() + check() from the same answers written as <tool_call> blocks (what scoring a
     native tool-calling model costs per entry),
and prints entries checked per second for both, the pass count per category, and the ids that
fail (entries whose ground truth contradicts its own function docs; no output can pass them).
Needs nothing but looptool: no model, no server, no network.

Usage: python benchmarks/bfcl_checker.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

from looptool.eval.bfcl_checker import check
from looptool.eval.bfcl_data import CATEGORIES, NO_GROUND_TRUTH, load_category
from looptool.eval.bfcl_decode import decode, encode_tool_call_tags, oracle_calls


def timed(fn, repeat: int) -> tuple[float, object]:
    """Best of `repeat` runs (seconds), and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best is reported")
    args = parser.parse_args()

    started = time.perf_counter()
    entries = [e for c in CATEGORIES if c not in NO_GROUND_TRUTH for e in load_category(c)]
    load_s = time.perf_counter() - started
    answers = [oracle_calls(e) for e in entries]
    texts = [encode_tool_call_tags(a) for a in answers]

    def check_decoded():
        return [check(e, a) for e, a in zip(entries, answers)]

    def decode_and_check():
        return [check(e, decode(t).calls) for e, t in zip(entries, texts)]

    dict_s, results = timed(check_decoded, args.repeat)
    text_s, text_results = timed(decode_and_check, args.repeat)
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


if __name__ == "__main__":
    main()
