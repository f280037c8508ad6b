"""Training rows from samples: the prompt as the policy sees it, and the label.

Prompts are rendered to text here (not left as chat messages for TRL to render), so that the
prompt is exactly what `templates.PromptRenderer` makes -- the same at training, probing and
evaluation -- and so it can be trimmed to `max_prompt_tokens` first: TRL's GRPO trainer does not
truncate prompts. The label is written the way the template writes an assistant turn
(`PromptRenderer.answer`), so a reasoning template's empty `<think></think>` block is part of what
SFT learns exactly when the template would put it there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from looptool.policy.prompt import PromptRenderer
from looptool.schema import Sample
from looptool.store import Store


@dataclass
class Rows:
    rows: list[dict]  # prompt, completion (the label as the template answers), label (JSON), sample_id
    too_long: int = 0  # samples left out: even their last exchange exceeds the budget


def training_rows(samples: Iterable[Sample], renderer: PromptRenderer, max_prompt_tokens: int) -> Rows:
    out = Rows([])
    for sample in samples:
        history = renderer.fit(sample.messages, sample.tools, max_prompt_tokens)
        if history is None:
            out.too_long += 1
            continue
        out.rows.append({
            "prompt": renderer.render(history, sample.tools),
            "completion": renderer.answer(history, sample.tools, sample.label),
            "label": sample.label.model_dump_json(),
            "sample_id": sample.id,
        })  # fmt: skip
    return out


def seed_pool(store: Store) -> list[str]:
    """The ids of every active seed training sample, sorted."""
    return sorted(s.id for s in store.iter_samples(origin="seed", split="train", active=True))
