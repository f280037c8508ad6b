"""Prompts kept short: the policy's prompt as the project renders it (tools as compact JSON, one per
line, no output schema) against the same prompt with the tools pretty-printed (indented JSON, the
way most tool lists are written), on templated training samples. Prints the prompt tokens of each
form and the time of a LoRA forward+backward pass over a batch of the same samples (the cost SFT
and GRPO's loss pay per prompt), the two forms interleaved in one process so both see the same load.

Usage: python benchmarks/prompt_length.py [--samples 64] [--batch 4] [--reps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Sequence
from unittest import mock

from looptool.schema import ToolSpec


def pretty_tools(tools: Sequence[ToolSpec]) -> str:
    """The tool list as indented JSON with every field, the usual long form."""
    return "\n".join(json.dumps(t.model_dump(exclude_none=True), ensure_ascii=False, indent=2) for t in tools)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=64, help="templated training samples to render")
    parser.add_argument("--batch", type=int, default=4, help="sequences per forward+backward pass")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from looptool.embedded import materialise
    from looptool.policy import prompt as templates
    from looptool.policy.prompt import PromptRenderer, label_text
    from looptool.seed.templated import templated_samples
    from looptool.serving.server import cpu_has_fast_bf16

    model_dir = str(materialise(log=lambda *a: None))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    renderer = PromptRenderer(tokenizer)
    samples = [s for s in templated_samples(args.samples * 2, seed=0) if s.split == "train"][: args.samples]

    def texts(form: str) -> list[str]:
        patch = mock.patch.object(templates, "render_tools", pretty_tools) if form == "pretty" else contextlib.nullcontext()
        with patch:
            return [renderer.render(s.messages, s.tools) + label_text(s.label) for s in samples]

    forms = {"compact (the project's)": texts("compact"), "pretty-printed": texts("pretty")}
    tokens = {f: [len(tokenizer(t)["input_ids"]) for t in ts] for f, ts in forms.items()}

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if cpu_has_fast_bf16() else contextlib.nullcontext
    batches = {f: tokenizer(ts[: args.batch], return_tensors="pt", padding=True) for f, ts in forms.items()}
    spent: dict[str, list[float]] = {f: [] for f in forms}
    for rep in range(args.reps + 1):  # the first rep warms up and is not counted
        for form, batch in batches.items():
            started = time.perf_counter()
            with autocast():
                loss = model(**batch, labels=batch["input_ids"]).loss
            loss.backward()
            model.zero_grad()
            if rep:
                spent[form].append(time.perf_counter() - started)

    print(f"{len(samples)} templated training samples (seed 0); LoRA r16 on the embedded model; batch {args.batch}; "
          f"{'bf16 autocast' if cpu_has_fast_bf16() else 'float32'}; {args.reps} interleaved reps")
    for form in forms:
        print(f"{form:>24}: prompt+answer tokens mean {statistics.mean(tokens[form]):.0f} "
              f"(max {max(tokens[form])}); forward+backward {statistics.median(spent[form]):.2f} s "
              f"(batch of {batches[form]['input_ids'].shape[1]} tokens each)")
    short, long = forms
    print(f"compact/pretty: tokens x{statistics.mean(tokens[short]) / statistics.mean(tokens[long]):.2f}, "
          f"forward+backward x{statistics.median(spent[short]) / statistics.median(spent[long]):.2f}")


if __name__ == "__main__":
    main()
