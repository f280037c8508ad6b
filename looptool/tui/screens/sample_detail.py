"""One sample in full: where it came from, its context, its label beside the latest probe's
prediction with the difference highlighted, every probe (with perplexity), the judge's verdicts
(how each was reached) and reasoning, the labels it had before (versions), the expansions made
from it, and the judge's and the expander's model calls behind those verdicts and expansions."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from looptool.display import calls_text, label_shown, short
from looptool.schema import Probe, Sample, Verdict
from looptool.store import StoreError
from looptool.tui.data import CallGroup, call_groups
from looptool.tui.widgets.agent_calls import AgentCallList
from looptool.tui.widgets.label_diff import LabelDiff


@dataclass
class SampleRecord:
    sample: Sample
    history: list[dict[str, Any]]
    probes: list[Probe]
    verdicts: list[Verdict]
    expansions: list[dict[str, Any]]
    calls: list[CallGroup]  # the judge's and the expander's calls about it


def _facts(s: Sample) -> Text:
    text = Text.assemble((f"sample {s.id}", "bold"))
    text.append(f"  origin {s.origin} · added in round {s.round_added} · split {s.split} · scenario "
                f"{s.scenario or '-'} · label v{s.label_version} · {'active' if s.active else 'INACTIVE'}")
    text.append(f"\n  dialogue {s.dialogue_id or '-'} · parent {s.parent_id or '-'} · tools "
                + ", ".join(t.name for t in s.tools), style="dim")
    return text


def _context(s: Sample, last: int = 6) -> Text:
    text = Text.assemble(("context" + (f" (last {last} of {len(s.messages)} messages)" if len(s.messages) > last
                                       else "") + "\n", "bold underline"))
    for m in s.messages[-last:]:
        body = calls_text(m.tool_calls) if m.tool_calls else m.content or ""
        who = m.role.upper() + (f" {m.name}" if m.role == "tool" and m.name else "")
        text.append(f"  {who:<10} ", style="bold")
        text.append(short(body, 300) + "\n")
    return text


def _records(r: SampleRecord) -> Group:
    probes = Table(title="probes", title_justify="left", expand=True, show_edge=False)
    for column in ("round", "correct", "perplexity", "category", "raw output"):
        probes.add_column(column, overflow="ellipsis", no_wrap=True, ratio=4 if column == "raw output" else None)
    for p in r.probes:
        probes.add_row(str(p.round), "yes" if p.correct else "no", "-" if p.ppl is None else f"{p.ppl:.3f}",
                       p.category or "-", short(p.raw, 200))
    verdicts = Table(title="verdicts", title_justify="left", expand=True, show_edge=False)
    for column in ("round", "judge", "basis", "override", "applies", "judge model", "analysis"):
        verdicts.add_column(column, overflow="fold", ratio=4 if column == "analysis" else None)
    for v in r.verdicts:
        verdicts.add_row(str(v.round), v.verdict, v.basis, v.human_override or "-", v.effective,
                         v.judge_model or "-", v.rationale or "-")
    history = Text.assemble(("label history (versions before the current one)\n", "bold underline"))
    for h in r.history:
        history.append(f"  v{h['label_version']}  {label_shown(h['label'])}", style="")
        history.append(f"   replaced {h['replaced_at'][:19].replace('T', ' ')}: {h['reason']}\n", style="dim")
    if not r.history:
        history.append("  (none: the label is as first made)\n", style="dim")
    expansions = Table(title="expansions made from it", title_justify="left", expand=True, show_edge=False)
    for column in ("round", "slot", "status", "dimension", "new sample", "detail"):
        expansions.add_column(column, overflow="ellipsis", no_wrap=True, ratio=3 if column == "detail" else None)
    for e in r.expansions:
        expansions.add_row(str(e["round"]), str(e["slot"]), e["status"], e["dimension"], e["sample_id"] or "-",
                           short(e["detail"], 120))
    parts: list[Any] = [probes if r.probes else Text("probes: none yet", style="dim"),
                        Text(""), verdicts if r.verdicts else Text("verdicts: none", style="dim"), Text(""), history,
                        expansions if r.expansions else Text("expansions made from it: none", style="dim")]
    return Group(*parts)


class SampleDetailScreen(Screen):
    """Everything about one sample."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("t", "open_trace", "Trace"),
    ]

    class Loaded(Message):
        def __init__(self, record: SampleRecord | None) -> None:
            super().__init__()
            self.record = record

    def __init__(self, sample_id: str) -> None:
        super().__init__()
        self.sample_id = sample_id
        self.record: SampleRecord | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static("loading…", id="detail-facts")
            yield Static("", id="detail-context")
            yield Static("", id="detail-diff-title")
            yield LabelDiff(id="detail-diff")
            yield Static("", id="detail-records")
            yield AgentCallList(id="detail-calls")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"sample {self.sample_id}"
        self.query_one("#detail").focus()
        self.load()

    @work(thread=True, exclusive=True, group="sample-detail", exit_on_error=False)
    def load(self) -> None:
        try:
            with self.app.open_store() as store:
                try:
                    sample = store.get_sample(self.sample_id)
                except KeyError:
                    self.post_message(self.Loaded(None))
                    return
                expansions = store.expansions_of(self.sample_id)
                calls = call_groups(store.agent_calls(sample_id=self.sample_id), expansions)
                record = SampleRecord(sample, store.label_history(self.sample_id),
                                      store.probes_for_sample(self.sample_id),
                                      store.verdicts_for_sample(self.sample_id), expansions, calls)
        except (sqlite3.Error, StoreError) as exc:
            self.app.note_read_error(exc)
            self.app.call_from_thread(self.set_timer, 1.0, self.load)
            return
        self.post_message(self.Loaded(record))

    def on_sample_detail_screen_loaded(self, message: Loaded) -> None:
        r = message.record
        self.record = r
        if r is None:
            self.query_one("#detail-facts", Static).update(f"no sample {self.sample_id}")
            return
        self.query_one("#detail-facts", Static).update(_facts(r.sample))
        self.query_one("#detail-context", Static).update(_context(r.sample))
        probe = r.probes[-1] if r.probes else None
        title = Text.assemble(("label vs prediction", "bold underline"))
        if probe is not None:
            title.append(f"  (round {probe.round} probe: {'correct' if probe.correct else 'wrong'}"
                         + (f", perplexity {probe.ppl:.3f}" if probe.ppl is not None else "") + ")", style="")
        self.query_one("#detail-diff-title", Static).update(title)
        self.query_one(LabelDiff).show(r.sample.label, None if probe is None else probe.prediction,
                                       None if probe is None else probe.raw,
                                       title=f"round {probe.round} prediction" if probe else "prediction")
        self.query_one("#detail-records", Static).update(_records(r))
        self.query_one(AgentCallList).show(r.calls)

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_open_trace(self) -> None:
        if self.record is None:
            return
        dialogue = self.record.sample.dialogue_id
        if dialogue is None and self.record.sample.parent_id:
            self.notify("an expanded sample has no dialogue; its parent is " + self.record.sample.parent_id)
            return
        if dialogue is None:
            self.notify("this sample has no dialogue (templated)", severity="warning")
            return
        self.app.open_trace(dialogue)
