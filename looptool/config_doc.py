"""docs/CONFIG.md, generated from the config models (config.py) and the presets (presets.py).

It sits above both, as the one place that renders them, so that config.py imports nothing above it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from looptool.config import (
    EndpointModel,
    EvalConfig,
    LoopConfig,
    ManagedModel,
    SeedConfig,
    ServingConfig,
    TrainConfig,
    WorkspaceConfig,
)
from looptool.presets import presets_reference


def config_reference() -> str:
    """Markdown reference of every field, generated from the models (docs/CONFIG.md)."""

    def table(model: type[BaseModel], section: str) -> list[str]:
        rows = [f"### `{section}`", "", model.__doc__.strip(), "", "| field | default | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            if name == "kind":
                default = f'`"{field.default}"`'
            elif field.is_required():
                default = "required"
            else:
                value = field.get_default(call_default_factory=True)
                default = f"`{json_value(value)}`"
            rows.append(f"| `{name}` | {default} | {field.description or ''} |")
        return [*rows, ""]

    def json_value(value: Any) -> str:
        import json

        return json.dumps(value) if not isinstance(value, BaseModel) else "{...}"

    lines = [
        "# `looptool.toml` reference",
        "",
        "Generated from `looptool/config.py` and `looptool/presets.py` (`config_doc.config_reference()`); a test "
        "keeps the two in step.",
        "",
        WorkspaceConfig.__doc__.strip(),
        "",
        "| key | meaning |",
        "|---|---|",
        *(f"| `{n}` | {f.description or ''} |" for n, f in WorkspaceConfig.model_fields.items() if n not in ("serving", "seed", "train", "eval", "loop")),
        "| `[serving]` | How managed vLLM servers are run (below). |",
        "| `[seed]` | How seed dialogues are made (below). |",
        "| `[train]` | How the policy is trained (below). |",
        "| `[eval]` | How the policy is evaluated (below). |",
        "| `[loop]` | How a round of the loop probes, verifies and expands (below). |",
        "",
        "Each role section (`[policy]`, `[generator]`, `[judge]`, and optionally `[planner]`, `[user]`,",
        "`[assistant]`, `[tool]`, `[expander]`) is one of the two kinds below; `kind` may be left out for `managed`.",
        "",
        *table(ManagedModel, '[<role>] kind = "managed"'),
        *table(EndpointModel, '[<role>] kind = "endpoint"'),
        *table(ServingConfig, "[serving]"),
        *table(SeedConfig, "[seed]"),
        *table(TrainConfig, "[train]"),
        *table(EvalConfig, "[eval]"),
        *table(LoopConfig, "[loop]"),
        "Example: train a local Qwen3-8B checkpoint, generate and judge with a remote Qwen3-32B.",
        "",
        "```toml",
        'name = "qwen-loop"',
        "",
        "[policy]",
        'model = "/models/Qwen3-8B"',
        "",
        "[generator]",
        'kind = "endpoint"',
        'base_url = "http://gpu-box:8000/v1"',
        'model = "Qwen/Qwen3-32B"',
        'api_key_env = "GPU_BOX_KEY"',
        "",
        "[judge]",
        'kind = "endpoint"',
        'base_url = "http://gpu-box:8000/v1"',
        'model = "Qwen/Qwen3-32B"',
        "```",
        "",
        "Several servers of one model for a role (vLLM replicas on other hosts, or on other ports of one host):",
        "requests are spread over the healthy ones, and one that fails is left out for",
        "`[serving] endpoint_cooldown_s` while its requests go to the others.",
        "",
        "```toml",
        "[generator]",
        'kind = "endpoint"',
        'base_urls = ["http://gpu-a:8000/v1", "http://gpu-b:8000/v1", "http://gpu-c:8000/v1"]',
        'model = "Qwen/Qwen3-32B"',
        "```",
        "",
    ]
    return "\n".join(lines + presets_reference())
