"""Which model an evaluation asks: the policy as configured, or the policy with a round's adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from looptool.config import DB_FILE, WorkspaceConfig
from looptool.serving.client import Endpoint, load_lora, resolve_endpoint
from looptool.store import Store, StoreError


@dataclass(frozen=True)
class EvalTarget:
    endpoint: Endpoint
    model: str  # the name requests carry: the base model, or the adapter's name on the server
    round: int  # 0: the base policy
    adapter: str | None  # the adapter's path, when there is one

    @property
    def label(self) -> str:
        return self.endpoint.model if not self.round else f"{self.endpoint.model} + round {self.round} adapter"


def resolve_target(workspace: Path, config: WorkspaceConfig, round: int | None, *,
                   log: Callable[[str], None] = print) -> EvalTarget:
    """The policy's endpoint (its managed server started if needed); for `round`, that round's
    adapter hot-loaded into it. Round 0 means the base policy, as it was before any training."""
    adapter: str | None = None
    if round:
        with Store.open(workspace / DB_FILE) as store:
            info = store.get_round(round)
        if info is None:
            raise StoreError(f"round {round} does not exist in {workspace}; see 'looptool status'")
        if not info.adapter_path:
            raise StoreError(f"round {round} has no trained adapter yet; train it first")
        adapter = str((workspace / info.adapter_path).resolve())
        if not Path(adapter).is_dir():
            raise StoreError(f"round {round}'s adapter {adapter} is missing")
    endpoint = resolve_endpoint(config, "policy", workspace, log=log)
    if adapter is None:
        return EvalTarget(endpoint, endpoint.model, 0, None)
    name = f"round-{round}"
    load_lora(endpoint, name, adapter)
    return EvalTarget(endpoint, name, round, adapter)
