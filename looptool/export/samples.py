"""The samples for the command line: a table of those that pass the filters, and one sample in full.

The filters and the page are the terminal UI's (`Store.sample_page`: the database filters and
pages, nothing loads every sample); the cells are shaped by the same functions as the UI's
(`tui.data`), so `looptool samples list` and the samples screen show the same thing.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from looptool.display import calls_text, label_shown, label_summary, short
from looptool.export.files import ExportError
from looptool.schema import Origin, ProbeCategory, Sample, Split, VerdictKind
from looptool.store import Store

CHOICES: dict[str, tuple[str, ...]] = {"origin": get_args(Origin), "split": get_args(Split),
                                       "category": get_args(ProbeCategory), "verdict": get_args(VerdictKind)}


def check_filters(**values: Any) -> None:
    """ExportError naming the option when a filter's value is not one it can take."""
    for name, value in values.items():
        if value is not None and name in CHOICES and value not in CHOICES[name]:
            raise ExportError(f"--{name}: unknown {name} {value!r}; use {', '.join(CHOICES[name])}")


MIN_LABEL_WIDTH = 24


def sample_table(rows: list[dict[str, Any]], width: int) -> tuple[Table, int]:
    """One row per sample header (`Store.sample_page`'s rows), and the width it needs. Every column
    keeps its width (no column is cut or dropped); the label takes what `width` leaves, at least
    MIN_LABEL_WIDTH characters, and is cut with an ellipsis."""
    names = ("id", "added", "origin", "split", "scenario", "label", "probe", "verdict")
    cells = [[r["id"] + ("" if r["active"] else " (inactive)"), str(r["round_added"]), r["origin"], r["split"],
              r["scenario"] or "-", "", r["category"] or "-", r["verdict"] or "-"] for r in rows]
    widths = [max(len(name), *(len(c[i]) for c in cells)) for i, name in enumerate(names)]
    gaps = 2 * (len(names) - 1)  # one space of padding on each side of every column but the outer edges
    label_width = max(MIN_LABEL_WIDTH, width - gaps - sum(w for i, w in enumerate(widths) if names[i] != "label"))
    for r, c in zip(rows, cells, strict=True):
        c[5] = label_summary(r["label"], label_width)
    widths[5] = max(len("label"), *(len(c[5]) for c in cells))
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, w in zip(names, widths, strict=True):
        table.add_column(name, no_wrap=True, min_width=w)
    for c in cells:
        table.add_row(*c)
    return table, sum(widths) + gaps


def resolve_sample(store: Store, prefix: str) -> str:
    """The one sample id `prefix` names (the id, or a unique prefix of it); ExportError otherwise."""
    found = store.sample_ids_matching(prefix)
    if len(found) == 1:
        return found[0]
    if not found:
        raise ExportError(f"no sample with id {prefix!r} in {store.path.parent}; see 'looptool samples list'")
    raise ExportError(f"{prefix!r} starts {'more than ' if len(found) >= 10 else ''}{len(found)} sample ids "
                      f"({', '.join(found[:3])}, ...); give more of the id")


def sample_detail(store: Store, sample_id: str) -> RenderableType:
    """One sample in full: where it came from, its tools, its messages, its label and accepted
    answers, the labels it had before, its probes and verdicts, and the expansions made from it."""
    s = store.get_sample(sample_id)
    parts: list[RenderableType] = [_facts(s), _tools(s), _messages(s), _label(s)]
    history = store.label_history(s.id)
    if history:
        parts.append(_section("labels before", [f"v{h['label_version']} ({h['reason']}): {label_shown(h['label'])}"
                                                for h in history]))
    probes = store.probes_for_sample(s.id)
    if probes:
        parts.append(_section("probes", [
            f"round {p.round}: {'correct' if p.correct else 'wrong'}, {p.category or '-'}"
            + (f", ppl {p.ppl:.3f}" if p.ppl is not None else "") + f" -- {short(p.raw, 200)}" for p in probes]))
    verdicts = store.verdicts_for_sample(s.id)
    if verdicts:
        parts.append(_section("verdicts", [
            f"round {v.round}: {v.effective}" + (f" (judge said {v.verdict}, overridden)" if v.human_override
                                                           else "") + f" by {v.basis}"
            + (f" on label v{v.label_version}" if v.label_version is not None else "") + f" -- {short(v.rationale, 300)}"
            for v in verdicts]))
    expansions = store.expansions_of(s.id)
    if expansions:
        parts.append(_section("expansions made from it", [
            f"round {e['round']} slot {e['slot']}: {e['status']} ({e['dimension']})"
            + (f" -> {e['sample_id']}" if e["sample_id"] else "") for e in expansions]))
    return Group(*parts)


def _facts(s: Sample) -> Text:
    text = Text(f"sample {s.id}", style="bold")
    text.append(f"\n  origin {s.origin} · added in round {s.round_added} · split {s.split} · scenario "
                f"{s.scenario or '-'} · label v{s.label_version}{' (exact)' if s.exact else ''} · "
                f"{'active' if s.active else 'INACTIVE (out of training)'}")
    text.append(f"\n  dialogue {s.dialogue_id or '-'} · parent {s.parent_id or '-'}")
    return text


def _section(title: str, lines: list[str]) -> Text:
    text = Text(f"\n{title}", style="bold underline")
    for line in lines:
        text.append(f"\n  {line}")
    return text


def _tools(s: Sample) -> Text:
    return _section(f"tools ({len(s.tools)})", [
        f"{t.name}: {short(t.description, 100) or '-'}  {json.dumps(t.parameters, ensure_ascii=False)}"
        for t in s.tools])


def _messages(s: Sample) -> Text:
    text = Text(f"\nmessages ({len(s.messages)})", style="bold underline")
    for m in s.messages:
        who = m.role.upper() + (f" {m.name}" if m.role == "tool" and m.name else "")
        body = calls_text(m.tool_calls) if m.tool_calls else m.content or ""
        text.append(f"\n  {who}", style="bold")
        text.append("\n    " + body.replace("\n", "\n    "))
    return text


def _label(s: Sample) -> Text:
    lines = [label_shown(s.label.primary())]
    lines += [f"also accepted: {label_shown(a)}" for a in s.label.alternatives]
    return _section("label", lines)
