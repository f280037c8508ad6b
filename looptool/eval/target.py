"""Which model an evaluation asks: the policy as configured, or the policy with a round's adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from looptool.config import DB_FILE, ManagedModel, WorkspaceConfig
from looptool.serving.client import Endpoint, load_lora, resolve_endpoint
from looptool.schema import stable_id
from looptool.store import Store, StoreError
from looptool.training.templates import PromptRenderer, load_renderer


@dataclass(frozen=True)
class EvalTarget:
    endpoint: Endpoint
    model: str  # the name requests carry: the base model, or the adapter's name on the server
    round: int | None  # 0: the base policy; None: an adapter given by its directory
    adapter: str | None  # the adapter's path, when there is one

    def run_id(self, suite: str, settings: dict) -> str:
        """The id of this target's run of a suite under these settings: asking again continues it.
        The server's address is not part of it, since a managed server gets a new port each time
        it starts; the served model, the adapter and the settings are."""
        return stable_id("eval", suite, self.endpoint.model, self.model, self.adapter, self.round, settings)

    @property
    def label(self) -> str:
        if self.adapter is None:
            return self.endpoint.model
        return f"{self.endpoint.model} + " + (f"round {self.round} adapter" if self.round else self.model)


def resolve_target(workspace: Path, config: WorkspaceConfig, round: int | None, *,
                   adapter: Path | None = None, log: Callable[[str], None] = print) -> EvalTarget:
    """The policy's endpoint (its managed server started if needed), with the adapter to evaluate
    hot-loaded into it: round R's adapter for `round`, or any adapter directory for `adapter` (e.g. a
    round's SFT warm start). Round 0, or neither, means the base policy."""
    name: str | None = None
    if adapter is not None:
        if round:
            raise StoreError("give --round or --adapter, not both")
        if not (adapter / "adapter_config.json").is_file():
            raise StoreError(f"{adapter} is not a LoRA adapter directory (no adapter_config.json)")
        path, name = str(adapter.resolve()), f"adapter-{adapter.resolve().name}"
    elif round:
        with Store.open(workspace / DB_FILE) as store:
            info = store.get_round(round)
        if info is None:
            raise StoreError(f"round {round} does not exist in {workspace}; see 'looptool eval show'")
        if not info.adapter_path:
            raise StoreError(f"round {round} has no trained adapter yet; run 'looptool train grpo --round {round}'")
        path, name = str((workspace / info.adapter_path).resolve()), f"round-{round}"
        if not Path(path).is_dir():
            raise StoreError(f"round {round}'s adapter {path} is missing")
    endpoint = resolve_endpoint(config, "policy", workspace, log=log)
    if name is None:
        return EvalTarget(endpoint, endpoint.model, 0, None)
    load_lora(endpoint, name, path)
    return EvalTarget(endpoint, name, None if adapter is not None else round, path)


def policy_renderer(config: WorkspaceConfig) -> PromptRenderer | None:
    """The policy's prompt renderer when its tokenizer is on this machine (a managed policy), so
    evaluation prompts are rendered exactly as training renders them; None for an endpoint policy,
    whose server applies its own chat template to the same messages."""
    if not isinstance(config.policy, ManagedModel):
        return None
    return load_renderer(config.policy.model)
