"""A person's review of a round's verdicts on the command line (`looptool review`): what is shown
for each verdict -- the label and the prediction the judge compared, the verdict, how it was
reached and the judge's text, as the terminal UI shows them -- and the overrides, given as
SAMPLE=VERDICT with a sample id or a unique prefix of it, all read and checked before any is
written (`Store.set_human_overrides` then writes them in one transaction).

A person's override is a decision on the version of the sample's label the verdict was about: a
later round keeps it for as long as the label stays that version (loop/verify.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

from looptool.config import ConfigError
from looptool.display import calls_text, label_shown, short
from looptool.schema import Label, Probe, Verdict, VerdictKind, ids_matching
from looptool.store import Store

CLEAR = "judge"  # the override value that clears an override: the judge's verdict applies again
VERDICT_KINDS: tuple[str, ...] = get_args(VerdictKind)
WIDTH = 110


class ReviewError(ConfigError):
    """An override that cannot be read: the message says which and why, in one line."""


@dataclass(frozen=True)
class ReviewItem:
    """One verdict with what the judge compared: the sample's label and the round's prediction."""

    verdict: Verdict
    label: Label | None  # None: the sample is gone
    probe: Probe | None  # None: the sample was not probed in the round


def review_items(store: Store, round: int) -> list[ReviewItem]:
    """The round's verdicts by sample id, each with the sample's label and its probe of the round."""
    probes = {p.sample_id: p for p in store.probes(round)}
    items = []
    for v in store.verdicts(round):
        try:
            label = store.get_sample(v.sample_id).label
        except KeyError:
            label = None
        items.append(ReviewItem(v, label, probes.get(v.sample_id)))
    return items


def resolve_sample(prefix: str, sample_ids: Sequence[str], round: int) -> str:
    """The one sample id among `sample_ids` (those with a verdict in the round) that is `prefix` or
    starts with it; ReviewError when none or several do."""
    found = ids_matching(prefix, sample_ids)
    if len(found) == 1:
        return found[0]
    if not found:
        raise ReviewError(f"no verdict of round {round} is on a sample whose id starts with {prefix!r}; "
                          "'looptool review' lists them")
    shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
    raise ReviewError(f"{prefix!r} starts {len(found)} sample ids with verdicts in round {round} ({shown}); "
                      "give more of the id")


def read_overrides(items: Sequence[str], sample_ids: Sequence[str], round: int) -> dict[str, VerdictKind | None]:
    """Each SAMPLE=VERDICT of `items` as sample id -> verdict (None for 'judge': clear the override),
    every one checked before any is returned: ReviewError names the first that is wrong."""
    decisions: dict[str, VerdictKind | None] = {}
    given: dict[str, str] = {}
    for item in items:
        prefix, sep, kind = (part.strip() for part in item.partition("="))
        where = f"--override {item!r}"
        if not sep or not prefix or not kind:
            raise ReviewError(f"{where}: write SAMPLE_ID=VERDICT, e.g. s_68f2fd65=PRED_WRONG")
        chosen = CLEAR if kind.lower() == CLEAR else kind.upper()
        if chosen != CLEAR and chosen not in VERDICT_KINDS:
            raise ReviewError(f"{where}: unknown verdict {kind!r}; use {', '.join(VERDICT_KINDS)}, or {CLEAR} to "
                              "clear an override")
        try:
            sample_id = resolve_sample(prefix, sample_ids, round)
        except ReviewError as exc:
            raise ReviewError(f"{where}: {exc}") from None
        if sample_id in given and given[sample_id] != chosen:
            raise ReviewError(f"{where}: sample {sample_id} is given twice, as {given[sample_id]} and {chosen}")
        given[sample_id] = chosen
        decisions[sample_id] = None if chosen == CLEAR else chosen  # type: ignore[assignment]
    return decisions


def how_reached(v: Verdict) -> str:
    """Who or what gave the verdict."""
    return {"rule": "by rule, no judge asked",
            "no_answer": f"judge ({v.judge_model}) gave no valid verdict",
            "person": "a person's earlier decision, kept (no judge asked)"}.get(v.basis, f"judge ({v.judge_model})")


def prediction_text(probe: Probe | None) -> str:
    """The prediction as the review shows it: its calls, or the reply it gave."""
    if probe is None:
        return "(not probed)"
    if probe.prediction:
        return calls_text(probe.prediction)
    return f"(no call) {probe.raw}".strip()


def review_lines(round: int, items: Sequence[ReviewItem], *, waiting: bool) -> list[str]:
    """The round's verdicts for the terminal: a summary line, then per verdict the sample id, the
    verdict (and a person's override), how it was reached, the label, the prediction and the text."""
    counts = Counter(i.verdict.effective for i in items)
    head = f"round {round}: {len(items)} verdicts (" + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + ")"
    if waiting:
        head += "; the loop waits for this review: 'looptool review --accept' applies them and goes on"
    lines = [head]
    for item in items:
        v = item.verdict
        shown = v.verdict + (f" -> {v.human_override} (override)" if v.human_override else "")
        lines += [
            "",
            f"{v.sample_id}  {shown}  · {how_reached(v)}",
            f"    label       {short(label_shown(item.label), WIDTH) if item.label is not None else '(sample gone)'}",
            f"    prediction  {short(prediction_text(item.probe), WIDTH)}",
            f"    why         {short(v.rationale, WIDTH) or '-'}",
        ]
    return lines
