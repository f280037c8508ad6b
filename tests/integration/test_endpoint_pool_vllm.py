"""Two real vLLM servers (CPU build, the embedded model) behind one role: an evaluation's requests
reach both, and when one is stopped the next run goes on with the other, naming it once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import EMBEDDED_MODEL, ManagedModel, ServingConfig
from looptool.embedded import materialise
from looptool.serving.server import ServerInfo, ServerManager
from looptool.store import Store

pytestmark = pytest.mark.slow


def finished_requests(info: ServerInfo) -> int:
    """Requests the server has finished (vLLM's request_success counter, over every finish reason)."""
    text = httpx.get(f"{info.root_url}/metrics", timeout=10).text
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("vllm:request_success_total")))


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    """Two servers of the embedded model, each started by a workspace of its own (a workspace runs
    one server per model)."""
    root = tmp_path_factory.mktemp("pool")
    materialise(log=lambda *_: None)
    # A long start-up allowance: beside other work on a small machine, two servers start slowly.
    managers = [ServerManager(root / name, ServingConfig(startup_timeout_s=2400)) for name in ("a", "b")]
    with ThreadPoolExecutor(2) as starting:
        infos = list(starting.map(lambda m: m.start(ManagedModel(), log=lambda *_: None), managers))
    yield root, managers, infos
    for manager in managers:
        manager.stop_all()


def bfcl(ws: Path, limit: int):
    return CliRunner().invoke(app, ["eval", "bfcl", "-w", str(ws), "--categories", "simple", "--limit", str(limit),
                                    "--concurrency", "4"])


def test_a_role_over_two_real_servers_uses_both_and_survives_losing_one(two_servers, tmp_path):
    _, managers, (a, b) = two_servers
    ws = tmp_path / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    (ws / "looptool.toml").write_text(
        f'[eval]\nmax_tokens = 32\n[policy]\nkind = "endpoint"\nbase_urls = ["{a.base_url}", "{b.base_url}"]\n'
        f'model = "{EMBEDDED_MODEL}"\n'
    )
    before = [finished_requests(a), finished_requests(b)]
    result = bfcl(ws, 8)
    assert result.exit_code == 0, result.output
    after = [finished_requests(a), finished_requests(b)]
    served = [after[0] - before[0], after[1] - before[1]]
    assert sum(served) == 8 and min(served) >= 2, served  # spread over both (least in flight)
    assert a.base_url not in result.output and b.base_url not in result.output  # nothing went wrong

    managers[1].stop(b)
    again = bfcl(ws, 12)  # 4 more entries; the run resumes as if nothing had happened
    assert again.exit_code == 0, again.output
    assert again.output.count(b.base_url) == 1, again.output  # named once, as it leaves the pool
    assert f"server {b.base_url} of {EMBEDDED_MODEL} failed (cannot connect" in again.output
    assert finished_requests(a) - after[0] == 4
    with Store.open(ws / "looptool.db") as store:
        (run,) = store.eval_runs("bfcl")
        rows = store.eval_results(run["id"])
    assert len(rows) == 12 and len({r["entry_id"] for r in rows}) == 12
    assert all(r["output"] is not None and r["completion_tokens"] > 0 for r in rows)
