"""Every server of a workspace is listed -- the merged policy's and the arms' too -- and a loop that
ends says which servers it left running (fake servers: sleeping processes, no vLLM)."""

from __future__ import annotations

import pytest

from looptool.cli import app
from looptool.config import EMBEDDED_MODEL, load_config
from looptool.loop import graph as loop_graph
from looptool.serving import server
from looptool.tui.loop_process import LoopProcess
from tests.fake_servers import exited_server, fake_servers


@pytest.fixture
def healthy(monkeypatch):
    monkeypatch.setattr(server, "_healthy", lambda info, timeout=2.0: True)


def test_serve_status_lists_the_merged_policy_the_arms_and_forgets_exited_ones(workspace, runner, healthy):
    assert runner.invoke(app, ["init", str(workspace / "static")]).exit_code == 0  # an arm's workspace
    merged = str(workspace / "merged" / "policy-round-2")
    with fake_servers(workspace, [EMBEDDED_MODEL, merged]) as (embedded, merged_info), \
            fake_servers(workspace / "static", [EMBEDDED_MODEL]) as (static_info,):
        gone = exited_server(workspace, "policy-round-1")
        result = runner.invoke(app, ["serve", "status", "-w", str(workspace)])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert f"policy     managed  {EMBEDDED_MODEL} at {embedded.base_url} (pid {embedded.pid}): running" in lines
        merged_line = next(line for line in lines if "policy-round-2" in line)
        assert f"(pid {merged_info.pid}): running" in merged_line
        assert "the policy with the round-2 adapter merged in" in merged_line
        assert "'looptool serve stop' stops it" in merged_line
        static_line = next(line for line in lines if "static arm:" in line)
        assert f"(pid {static_info.pid}): running" in static_line and "for policy, generator, judge" in static_line
        assert f"'looptool serve stop -w {workspace / 'static'}' stops it" in static_line
        gone_line = next(line for line in lines if "policy-round-1" in line)
        assert "exited (forgotten)" in gone_line and gone.name not in {i.name for i in server.ServerManager(
            workspace, load_config(workspace).serving).known()}
        # `serve stop` stops every server of the workspace, the merged one included (not the arm's).
        stopped = runner.invoke(app, ["serve", "stop", "-w", str(workspace)])
        assert f"stopped {merged}" in stopped.output and f"stopped {EMBEDDED_MODEL}" in stopped.output
        again = runner.invoke(app, ["serve", "status", "-w", str(workspace)])
        assert "policy-round-2" not in again.output and f"{EMBEDDED_MODEL}: stopped" in again.output
        assert "static arm:" in again.output


def test_a_loop_that_ends_says_what_it_left_running(workspace, runner, monkeypatch, healthy):
    ended = loop_graph.LoopOutcome(round=2, paused=False, finished=True)
    monkeypatch.setattr(loop_graph, "run_loop", lambda *a, **kw: ended)
    nothing = runner.invoke(app, ["loop", "-w", str(workspace)])
    assert nothing.exit_code == 0 and "left running" not in nothing.output
    merged = str(workspace / "merged" / "policy-round-2")
    with fake_servers(workspace, [merged]) as (info,):
        result = runner.invoke(app, ["loop", "-w", str(workspace)])
        assert result.exit_code == 0, result.output
        last = result.output.strip().splitlines()[-1]
        assert last == (f"left running: policy-round-2 (pid {info.pid}, port {info.port}): the policy with the "
                        f"round-2 adapter merged in, for probing and evaluation. 'looptool serve stop -w {workspace}' "
                        "stops them")

        def interrupted(*a, **kw):
            raise KeyboardInterrupt

        monkeypatch.setattr(loop_graph, "run_loop", interrupted)
        result = runner.invoke(app, ["loop", "-w", str(workspace)])
        assert result.exit_code != 0 and f"left running: policy-round-2 (pid {info.pid}" in result.output
        # What the TUI says after `x` stopped its loop.
        assert LoopProcess(workspace).left_running() == last


def test_a_server_of_a_model_no_role_names_says_so(workspace, healthy):
    other = workspace / "old-checkpoint"
    with fake_servers(workspace, [str(other), EMBEDDED_MODEL]) as (old, embedded):
        config = load_config(workspace)
        assert server.what_it_serves(old, workspace, config) == "a model no role of looptool.toml names now"
        assert server.what_it_serves(embedded, workspace, config) == "for policy, generator, judge"
        assert {i.pid for i in server.running_servers(workspace, config)} == {embedded.pid, old.pid}


def test_review_accept_says_what_the_loop_left_running(workspace, runner, monkeypatch, healthy):
    from looptool.config import DB_FILE
    from looptool.schema import Verdict
    from looptool.seed.templated import templated_samples
    from looptool.store import Store

    sample = templated_samples(1, seed=3)[0]
    with Store.open(workspace / DB_FILE) as store:
        store.upsert_samples([sample])
        store.upsert_verdict(Verdict(sample_id=sample.id, round=1, verdict="PRED_WRONG"))
    monkeypatch.setattr(loop_graph, "run_loop", lambda *a, **kw: loop_graph.LoopOutcome(round=2, paused=True,
                                                                                         finished=False))
    merged = str(workspace / "merged" / "policy-round-1")
    with fake_servers(workspace, [merged]) as (info,):
        result = runner.invoke(app, ["review", "-w", str(workspace), "--accept"])
        assert result.exit_code == 0, result.output
        lines = result.output.strip().splitlines()
        assert lines[-2] == "loop: round 2, paused again"
        assert lines[-1].startswith(f"left running: policy-round-1 (pid {info.pid}, port {info.port})")
