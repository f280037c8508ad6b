"""The samples as a dataset for other tools: a Hugging Face dataset, parquet, or OpenAI-style chat JSONL.

One row per sample, the same in every format:

* `messages` -- the conversation in OpenAI chat form, ending with the label as the assistant's
  answer: `tool_calls` (`{"id", "type": "function", "function": {"name", "arguments": <JSON
  text>}}`) for calls, `content` for a reply with no call. The sample's leading system message is
  LoopTool's tool prompt, which training rebuilds from the tools, so it is left out: the tools
  travel in `tools`, and the exported model's chat template writes the prompt from them
  (`chat_template.py`).
* `tools` -- the tools offered, in OpenAI form (`{"type": "function", "function": {name,
  description, parameters}}`).
* `label` -- the label as LoopTool stores it (JSON: `calls`, or `text`, and the `alternatives` a
  judge accepted), which is what the GRPO reward compares answers with.
* `provenance` -- where the sample came from: sample and dialogue id, origin (seed / corrected /
  expanded), the round it was added in, its parent (the sample an expansion was made from), split,
  scenario, whether the label is exact by construction, whether it is active, the label version
  exported, the verdicts on it (the effective one: a person's override wins) with the latest as
  `verdict`, and the labels it had before (`label_history`).

So `messages` + `tools` is TRL's conversational SFT format (and OpenAI's fine-tuning format), and
`messages[:-1]` + `label` is a GRPO prompt with what the reward needs.

Which samples (`Selection`):

* by default, the workspace's data as it is now: every active sample with its current label;
* `round=R`: the data round R trained on -- the ids its assembly recorded (in that order, a repeated
  id repeated), each with the label it had while round R trained: a label corrected by round R's
  verdicts or a later round's is exported as it was before (its later versions are not part of
  round R). A round recorded without data (trained by `looptool train` outside the loop) trained
  on every active training sample, and exports those;
* `all=True`: every sample, the inactive ones too (those a BOTH_WRONG verdict took out of
  training), each with its current label; the labels it had before are in
  `provenance.label_history`.

`split` keeps one split (train or heldout) of any of these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from looptool.config import DB_FILE
from looptool.export.files import ExportError, check_target, write_directory
from looptool.policy.prompt import openai_tool, system_message
from looptool.schema import Label, Message, Sample, ToolCall, ToolSpec, Verdict
from looptool.store import Store

DataFormat = Literal["hf", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("hf", "jsonl", "parquet")
JSONL_FILE = "data.jsonl"
PARQUET_FILE = "data.parquet"
MANIFEST_FILE = "looptool-export.json"  # what was exported, from which workspace, and how


@dataclass(frozen=True)
class Selection:
    """Which samples an export holds (see the module's docstring)."""

    round: int | None = None
    all: bool = False
    split: str | None = None

    def __post_init__(self) -> None:
        if self.round is not None and self.all:
            raise ExportError("give --round or --all, not both")
        if self.round is not None and self.round < 1:
            raise ExportError(f"--round must be 1 or more (round 0 is the base model, which has no data), got {self.round}")
        if self.split is not None and self.split not in ("train", "heldout"):
            raise ExportError(f"--split: unknown split {self.split!r}; use train or heldout")

    def describe(self) -> str:
        what = (f"round {self.round}'s data" if self.round is not None
                else "every sample, inactive ones too" if self.all else "the active samples")
        return what + (f", {self.split} split" if self.split else "")


@dataclass(frozen=True)
class Exported:
    """A sample as exported: with the label it had in the selection, the verdicts and the earlier
    labels that belong to it."""

    sample: Sample
    verdicts: list[Verdict]
    history: list[dict[str, Any]]  # label_version, label (Label), reason -- older than sample.label


def select(store: Store, selection: Selection) -> list[Exported]:
    """The samples of `selection`, in order: a round's in its data's order, the others by id."""
    if selection.round is None:
        samples = store.iter_samples(active=None if selection.all else True, split=selection.split)
        return [_exported(store, s, before_round=None) for s in samples]
    return [e for e in _round_data(store, selection.round) if selection.split in (None, e.sample.split)]


def _round_data(store: Store, round: int) -> list[Exported]:
    info = store.get_round(round)
    if info is None:
        known = ", ".join(str(r.n) for r in store.rounds()) or "none yet"
        raise ExportError(f"round {round} does not exist in {store.path.parent} (rounds: {known})")
    ids = info.data_ids or [s.id for s in store.iter_samples(split="train", active=True)]
    out, cache = [], {}
    for sample_id in ids:
        if sample_id not in cache:
            try:
                sample = store.get_sample(sample_id)
            except KeyError:
                raise ExportError(f"round {round}'s data names sample {sample_id}, which is not in "
                                  f"{store.path}") from None
            cache[sample_id] = _exported(store, sample, before_round=round)
        out.append(cache[sample_id])
    return out


def _exported(store: Store, sample: Sample, *, before_round: int | None) -> Exported:
    """The sample with its verdicts and earlier labels; with `before_round`, as it was while that
    round trained: its label then, and only the verdicts of the rounds before."""
    from looptool.loop.verify import reason_round

    history = store.label_history(sample.id)
    verdicts = store.verdicts_for_sample(sample.id)
    if before_round is not None:
        verdicts = [v for v in verdicts if v.round < before_round]
        replaced = next((h for h in history if (reason_round(h["reason"]) or 0) >= before_round), None)
        if replaced is not None:  # replaced by this round's verdicts or a later round's
            sample = sample.model_copy(update={"label": replaced["label"], "label_version": replaced["label_version"]})
            history = [h for h in history if h["label_version"] < replaced["label_version"]]
    return Exported(sample, verdicts, history)


# -- rows ---------------------------------------------------------------------------------------


def call_arguments_text(call: ToolCall) -> str:
    """A call's arguments as OpenAI carries them: JSON text, written as LoopTool's call format
    writes them (`calls.format_calls`), so the exported chat template can put it in verbatim."""
    return json.dumps(call.arguments, ensure_ascii=False)


def openai_calls(calls: Sequence[ToolCall], ids: Sequence[str]) -> list[dict[str, Any]]:
    return [{"id": i, "type": "function", "function": {"name": c.name, "arguments": call_arguments_text(c)}}
            for c, i in zip(calls, ids, strict=True)]


def openai_messages(messages: Sequence[Message], label: Label) -> list[dict[str, Any]]:
    """A sample's context and label as OpenAI chat messages (see the module's docstring). A call
    takes the id of the tool result that answers it (`tool_call_id`, in order), else `call_<message
    index>_<call index>`; a tool result without an id takes its call's."""
    context = list(messages[1:] if messages and messages[0].role == "system" else messages)
    out: list[dict[str, Any]] = []
    waiting: list[str] = []  # ids of the last calls whose results have not come yet
    for i, m in enumerate(context):
        if m.role == "assistant":
            results = [r.tool_call_id for r in _results_after(context, i)]
            ids = [results[j] if j < len(results) and results[j] else f"call_{i}_{j}" for j in range(len(m.tool_calls))]
            row: dict[str, Any] = {"role": "assistant", "content": m.content}
            if m.tool_calls:
                row["tool_calls"] = openai_calls(m.tool_calls, ids)
            waiting = list(ids)
        elif m.role == "tool":
            call_id = m.tool_call_id or (waiting[0] if waiting else f"call_{i}")
            if call_id in waiting:
                waiting.remove(call_id)
            row = {"role": "tool", "tool_call_id": call_id, "content": m.content}
            if m.name:
                row["name"] = m.name
        else:
            row = {"role": m.role, "content": m.content}
        out.append(row)
    n = len(context)
    if label.calls:
        out.append({"role": "assistant", "content": None,
                    "tool_calls": openai_calls(label.calls, [f"call_{n}_{j}" for j in range(len(label.calls))])})
    else:
        out.append({"role": "assistant", "content": label.text})
    return out


def _results_after(messages: Sequence[Message], i: int) -> list[Message]:
    """The tool messages right after message i."""
    out = []
    for m in messages[i + 1:]:
        if m.role != "tool":
            break
        out.append(m)
    return out


def sample_row(exported: Exported) -> dict[str, Any]:
    """One row of the export (see the module's docstring)."""
    s = exported.sample
    verdicts = [{"round": v.round, "verdict": v.effective, "basis": v.basis}
                for v in exported.verdicts]
    return {
        "messages": openai_messages(s.messages, s.label),
        "tools": [openai_tool(t) for t in s.tools],
        "label": s.label.model_dump_json(),
        "provenance": {
            "sample_id": s.id, "dialogue_id": s.dialogue_id, "parent_id": s.parent_id, "origin": s.origin,
            "round_added": s.round_added, "split": s.split, "scenario": s.scenario, "exact": s.exact,
            "active": s.active, "label_version": s.label_version,
            "verdict": verdicts[-1]["verdict"] if verdicts else None, "verdicts": verdicts,
            "label_history": [{"label_version": h["label_version"], "label": h["label"].model_dump_json(),
                               "reason": h["reason"]} for h in exported.history],
        },
    }  # fmt: skip


def sample_from_row(row: dict[str, Any]) -> Sample:
    """The sample a row was exported from (its context, tools, label and provenance), as LoopTool
    stores samples: the inverse of `sample_row`, up to the agents that wrote each message, which
    the export leaves out, and the ids it gives to tool results that had none."""
    tools = [ToolSpec.from_openai(t) for t in row["tools"]]
    p = row["provenance"]
    context = [_message(m) for m in row["messages"][:-1]]
    return Sample(id=p["sample_id"], dialogue_id=p["dialogue_id"], parent_id=p["parent_id"], origin=p["origin"],
                  round_added=p["round_added"], messages=[system_message(tools), *context], tools=tools,
                  label=Label.model_validate_json(row["label"]), label_version=p["label_version"], active=p["active"],
                  split=p["split"], scenario=p["scenario"], exact=p["exact"])


def _message(m: dict[str, Any]) -> Message:
    calls = [ToolCall(name=c["function"]["name"], arguments=_arguments(c["function"].get("arguments")))
             for c in m.get("tool_calls") or []]
    return Message(role=m["role"], content=m.get("content"), tool_calls=calls,
                   tool_call_id=m.get("tool_call_id") if m["role"] == "tool" else None,
                   name=m.get("name") if m["role"] == "tool" else None)


def _arguments(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


# -- files --------------------------------------------------------------------------------------


def features() -> Any:
    """The dataset's column types. Messages and tools are `Json` values (kept as JSON text, read
    back as objects): tool schemas differ from tool to tool, which no fixed Arrow struct holds."""
    from datasets import Features, Json, List, Value

    verdict = {"round": Value("int64"), "verdict": Value("string"), "basis": Value("string")}
    earlier = {"label_version": Value("int64"), "label": Value("string"), "reason": Value("string")}
    return Features({
        "messages": List(Json()),
        "tools": List(Json()),
        "label": Value("string"),
        "provenance": {
            "sample_id": Value("string"), "dialogue_id": Value("string"), "parent_id": Value("string"),
            "origin": Value("string"), "round_added": Value("int64"), "split": Value("string"),
            "scenario": Value("string"), "exact": Value("bool"), "active": Value("bool"),
            "label_version": Value("int64"), "verdict": Value("string"), "verdicts": List(verdict),
            "label_history": List(earlier),
        },
    })  # fmt: skip


def write_rows(rows: list[dict[str, Any]], out: Path, fmt: DataFormat) -> None:
    """Write the rows into the directory `out` in one format."""
    if fmt == "jsonl":
        with open(out / JSONL_FILE, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    import datasets

    datasets.disable_progress_bars()  # the command says what it wrote
    dataset = datasets.Dataset.from_list(rows, features=features())
    if fmt == "hf":
        dataset.save_to_disk(str(out))
    elif fmt == "parquet":
        dataset.to_parquet(str(out / PARQUET_FILE))
    else:
        raise ExportError(f"--format: unknown format {fmt!r}; use {', '.join(FORMATS)}")


def export_data(workspace: Path, target: Path, selection: Selection, fmt: DataFormat, *, force: bool = False,
                workspace_name: str = "", log: Callable[[str], None] = print) -> int:
    """Export the samples of `selection` to the directory `target`; returns how many rows."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown format {fmt!r}; use {', '.join(FORMATS)}")
    check_target(target, force=force)  # before any work
    with Store.open(workspace / DB_FILE) as store:
        exported = select(store, selection)
    if not exported:
        raise ExportError(f"no samples to export: {selection.describe()} holds none in {workspace}")
    rows = [sample_row(e) for e in exported]
    manifest = {"exported": "samples", "workspace": workspace_name, "selection": selection.describe(),
                "round": selection.round, "all": selection.all, "split": selection.split, "format": fmt,
                "rows": len(rows), "files": {"hf": "datasets.load_from_disk(DIR)", "jsonl": JSONL_FILE,
                                             "parquet": PARQUET_FILE}[fmt]}

    def write(out: Path) -> None:
        log(f"writing {len(rows)} samples ({selection.describe()}) as {fmt}")
        write_rows(rows, out, fmt)
        (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")

    write_directory(target, write, force=force)
    return len(rows)
