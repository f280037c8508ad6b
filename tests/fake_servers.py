"""Stand-ins for the vLLM servers a workspace starts: a sleeping process whose command line names
vLLM's server module (so `serving.server` takes it for one of ours), with the state file a real
start writes. Nothing listens on its port; tests patch the health check where they need one."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from looptool.config import EMBEDDED_MODEL, ServingConfig
from looptool.serving.server import VLLM_MODULE, ServerInfo, ServerManager, server_name


@contextmanager
def fake_servers(workspace: Path, models: list[str]) -> Iterator[list[ServerInfo]]:
    """One fake server per model (the embedded model's name, or a checkpoint directory such as a
    merged copy), recorded as started by the workspace; every one still running is killed after."""
    procs, infos = [], []
    manager = ServerManager(workspace, ServingConfig())
    try:
        for i, model in enumerate(models):
            proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", VLLM_MODULE],
                                    start_new_session=True)  # as a real server: a process group of its own
            procs.append(proc)
            path = model if model != EMBEDDED_MODEL else str(workspace / "cache" / model)
            info = ServerInfo(server_name(model), model, path, "127.0.0.1", 41000 + i, proc.pid,
                              str(workspace / "logs" / f"vllm-{server_name(model)}.log"), time.time())
            manager._write_state(info)
            infos.append(info)
        yield infos
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


def exited_server(workspace: Path, name: str) -> ServerInfo:
    """A state file left by a server whose process has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    info = ServerInfo(name, name, str(workspace / name), "127.0.0.1", 41999, proc.pid, "", time.time())
    ServerManager(workspace, ServingConfig())._write_state(info)
    return info
