"""The judge agent (JGLV): is the label wrong, the policy's answer wrong, both, or neither?

For a failed probe the judge sees the tools, the conversation, the date and two answers -- the
label and the policy's prediction -- and returns an analysis and a verdict. Which answer is shown
first is drawn per (sample, round, vote), so a judge that favours the first position does not
favour the label; the verdict is mapped back to LABEL_WRONG / PRED_WRONG / BOTH_OK / BOTH_WRONG.
With several votes the majority wins; a tie goes to the verdict that changes the data least.

The judge only rules on model-written labels. A label that is exact by construction (templated
tasks, imported ground truth) is right by rule, and an unreadable prediction (or none: the server
refused the prompt) cannot be a correct answer: both are PRED_WRONG without asking the judge
(`basis="rule"`). When the judge is asked but gives no valid verdict, the label is kept
(`basis="no_answer"`).

Output schema: {"analysis": str, "verdict": "ANSWER_1_WRONG" | "ANSWER_2_WRONG" | "BOTH_OK" | "BOTH_WRONG"}.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from looptool.agents.base import AgentResult, ask_json, tool_signatures, transcript
from looptool.calls import parse_calls
from looptool.prompts import render
from looptool.schema import Label, Probe, Sample, ToolCall, Verdict, VerdictKind
from looptool.serving.client import Endpoint

PROMPT_REF = "agents/judge.md"
POSITIONAL = ("ANSWER_1_WRONG", "ANSWER_2_WRONG", "BOTH_OK", "BOTH_WRONG")
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "analysis": {"type": "string", "minLength": 1, "maxLength": 600},
        "verdict": {"type": "string", "enum": list(POSITIONAL)},
    },
    "required": ["analysis", "verdict"],
    "additionalProperties": False,
}
EXACT_LABEL = "the label is exact by construction, so no judge was asked: the prediction is wrong"
# On a tie between votes: the verdict that changes the data least wins.
TIE_ORDER: tuple[VerdictKind, ...] = ("PRED_WRONG", "BOTH_OK", "BOTH_WRONG", "LABEL_WRONG")


def answer_text(calls: Sequence[ToolCall] | None, text: str | None) -> str:
    """An answer as the judge reads it: one call per line, or the reply text."""
    if calls:
        return "\n".join(f"call {c.name}({json.dumps(c.arguments, ensure_ascii=False)})" for c in calls)
    return f"no function call; replies: {(text or '').strip()[:500]!r}"


def prediction_label(probe: Probe) -> Label | None:
    """The prediction as a label (what a LABEL_WRONG verdict puts in the label's place); None when
    it could not be read."""
    if probe.prediction:
        return Label(calls=probe.prediction)
    parse = parse_calls(probe.raw)
    if not parse.ok or probe.raw.startswith("[request refused"):
        return None
    return Label(text=probe.raw.strip())


def rule_verdict(sample_id: str, round: int, rationale: str, kind: VerdictKind = "PRED_WRONG") -> Verdict:
    """A verdict (PRED_WRONG unless told) decided by a rule, with no judge asked; the rationale says which rule."""
    return Verdict(sample_id=sample_id, round=round, verdict=kind, judge_model="", basis="rule",
                   rationale=rationale)


def label_first(sample_id: str, round: int, vote: int) -> bool:
    """Whether the label is answer 1 in this vote: a fair coin fixed by (sample, round, vote)."""
    return random.Random(f"judge-order:{sample_id}:{round}:{vote}").random() < 0.5


def unmap(verdict: str, label_is_first: bool) -> VerdictKind:
    """A positional verdict as a verdict on the label and the prediction."""
    if verdict in ("BOTH_OK", "BOTH_WRONG"):
        return verdict  # type: ignore[return-value]
    first_wrong = verdict == "ANSWER_1_WRONG"
    return "LABEL_WRONG" if first_wrong == label_is_first else "PRED_WRONG"


def judge_prompt(sample: Sample, first: str, second: str, date: str) -> str:
    return render("looptool.agents", "judge", date=date, tools=tool_signatures(sample.tools),
                  conversation=transcript([m for m in sample.messages if m.role != "system"]),
                  answer_1=first, answer_2=second)  # fmt: skip


async def judge_sample(
    endpoint: Endpoint, sample: Sample, probe: Probe, *, date: str, votes: int = 1, temperature: float = 0.0,
    max_attempts: int = 3, judge_model: str = "",
) -> tuple[Verdict, list[AgentResult[dict]]]:
    """The verdict on one failed probe, and the judge's calls (for the trace)."""
    if sample.exact:
        return rule_verdict(sample.id, probe.round, EXACT_LABEL), []
    predicted = prediction_label(probe)
    if predicted is None:
        return rule_verdict(sample.id, probe.round, "the prediction could not be read (no judge asked)"), []
    label_answer = answer_text(sample.label.calls, sample.label.text)
    pred_answer = answer_text(predicted.calls, predicted.text)
    results: list[AgentResult[dict]] = []
    kinds: list[VerdictKind] = []
    analyses: list[str] = []
    for vote in range(votes):
        first = label_first(sample.id, probe.round, vote)
        prompt = judge_prompt(sample, *((label_answer, pred_answer) if first else (pred_answer, label_answer)), date)
        result = await ask_json("judge", PROMPT_REF, endpoint, prompt, JUDGE_SCHEMA, dict,
                                max_attempts=max_attempts, temperature=temperature, max_tokens=400)
        results.append(result)
        if result.value is not None:
            kinds.append(unmap(result.value["verdict"], first))
            analyses.append(" ".join(str(result.value["analysis"]).split()))
    if not kinds:
        # One sample's unusable judge output must not stop a round that has done minutes of work;
        # without a verdict the label is presumed right, as the method does for samples the judge
        # never sees, and the rationale says why (a person can override it at review).
        verdict = Verdict(sample_id=sample.id, round=probe.round, verdict="PRED_WRONG", judge_model=judge_model,
                          basis="no_answer", rationale=f"the judge gave no valid verdict after {max_attempts} "
                          f"attempts ({results[-1].error}); the label is kept")
        return verdict, results
    tally = Counter(kinds)
    top = max(tally.values())
    kind = next(k for k in TIE_ORDER if tally.get(k) == top)
    rationale = analyses[kinds.index(kind)]
    if votes > 1:
        rationale = f"[{', '.join(f'{k} {n}' for k, n in tally.most_common())}] {rationale}"
    verdict = Verdict(sample_id=sample.id, round=probe.round, verdict=kind, rationale=rationale,
                      corrected_label=predicted if kind == "LABEL_WRONG" else None, judge_model=judge_model)
    return verdict, results


CHECK_REF = "agents/judge_check.md"
CHECK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"analysis": {"type": "string", "minLength": 1, "maxLength": 400}, "correct": {"type": "boolean"}},
    "required": ["analysis", "correct"],
    "additionalProperties": False,
}


async def check_label(endpoint: Endpoint, sample: Sample, *, date: str, max_attempts: int = 3,
                      temperature: float = 0.0) -> AgentResult[dict]:
    """The judge's check of a new sample's label (an expansion, before it joins): its value is
    {"analysis": str, "correct": bool}, or None when the judge gave no valid answer."""
    prompt = render("looptool.agents", "judge_check", date=date, tools=tool_signatures(sample.tools),
                    conversation=transcript([m for m in sample.messages if m.role != "system"]),
                    answer=answer_text(sample.label.calls, sample.label.text))  # fmt: skip
    return await ask_json("judge", CHECK_REF, endpoint, prompt, CHECK_SCHEMA, dict, max_attempts=max_attempts,
                          temperature=temperature, max_tokens=300)
