"""Several servers behind one role (`base_urls`): the pool hands each request to the least busy
healthy server, takes a failing one out for a cool-down, tries the request on another, takes the
server back once it answers, and gives up in one line when every server fails. Against scripted
fake servers (tests/fakes.py); two real vLLM servers are in tests/integration/test_endpoint_pool_vllm.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from looptool.cli import app
from looptool.config import EndpointModel, WorkspaceConfig
from looptool.schema import ToolSpec
from looptool.serving.client import (
    Endpoint,
    EndpointDown,
    EndpointPool,
    RequestRejected,
    acomplete,
    forget_server_health,
    load_lora,
    prompt_logprobs,
    resolve_endpoint,
    structured_json,
)
from looptool.serving.server import ServingError
from looptool.store import Store
from tests.fakes import FakeOpenAI, chat_reply, json_schema_responder
from tests.unit.test_seed import TOOLS


@pytest.fixture(autouse=True)
def fresh_health(monkeypatch):
    """Each test starts as a new process would: no server known to be down or busy."""
    monkeypatch.setattr("looptool.serving.client.RETRY_BASE_DELAY_S", 0.01)
    forget_server_health()
    yield
    forget_server_health()


@pytest.fixture
def fakes():
    servers = [FakeOpenAI() for _ in range(3)]
    for server in servers:
        server.responder = lambda path, body: (200, chat_reply("hi"))
    yield servers
    for server in servers:
        server.close()


def pool_endpoint(servers: list[FakeOpenAI], **kw) -> Endpoint:
    urls = [s.endpoint.base_url for s in servers]
    return Endpoint(urls[0], "m", replicas=tuple(urls[1:]), **{"max_retries": 3, "cooldown_s": 30.0, **kw})


def dead_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def ask(endpoint: Endpoint, n: int, *, at_once: int | None = None) -> list[str]:
    """n chat requests, at most `at_once` in flight (all of them by default); their answers."""

    async def run() -> list[str]:
        limit = asyncio.Semaphore(at_once or n)

        async def one(i: int) -> str:
            async with limit:
                return (await acomplete(endpoint, [{"role": "user", "content": f"q{i}"}])).content

        return await asyncio.gather(*(one(i) for i in range(n)))

    return asyncio.run(run())


def notes(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]


# -- handing out servers ------------------------------------------------------------------------


def test_the_pool_hands_out_the_server_with_the_fewest_requests_in_flight():
    pool = EndpointPool(Endpoint("http://a/v1", "m", replicas=("http://b/v1", "http://c/v1")))
    first = [pool.take("m") for _ in range(3)]
    assert first == ["http://a/v1", "http://b/v1", "http://c/v1"]  # one each
    pool.give_back("http://b/v1")
    assert pool.take("m") == "http://b/v1"  # the only one with nothing in flight
    assert pool.take("m") == "http://a/v1"  # all hold one: a was handed one longest ago
    for url in ("http://a/v1", "http://a/v1", "http://b/v1", "http://c/v1"):
        pool.give_back(url)
    assert pool.take("m") == "http://c/v1"  # none holds any: c was handed one longest ago
    assert pool.take("m") == "http://b/v1"


def test_an_answer_sent_before_a_server_failed_does_not_bring_it_back(capsys):
    """Requests in flight on a server as it fails may still answer: that is old news, and the
    server stays out (said once) until a request handed out after the failure answers."""
    endpoint = Endpoint("http://a/v1", "m", replicas=("http://b/v1",), cooldown_s=0.0)
    early, other, failing = EndpointPool(endpoint), EndpointPool(endpoint), EndpointPool(endpoint)
    assert [early.take("m"), other.take("m"), failing.take("m")] == ["http://a/v1", "http://b/v1", "http://a/v1"]
    failing.failed("http://a/v1", "HTTP 500")
    failing.give_back("http://a/v1")
    early.answered("http://a/v1")  # handed out before the failure
    early.give_back("http://a/v1")
    assert notes(capsys) == ["note: server http://a/v1 of m failed (HTTP 500); left out for 0s, its requests go "
                             "to the other 1 server"]
    later = EndpointPool(endpoint)
    assert later.take("m") == "http://a/v1"  # on trial: its cool-down is over and nothing is in flight there
    later.answered("http://a/v1")  # handed out after the failure: a is back
    assert notes(capsys) == ["note: server http://a/v1 of m answers again; back in the pool"]


def test_concurrent_requests_are_spread_evenly_over_equal_servers(fakes):
    for server in fakes:
        server.delay_s = 0.3  # every request is still in flight when the last one is handed out
    assert ask(pool_endpoint(fakes), 12) == ["hi"] * 12
    assert [server.posts for server in fakes] == [4, 4, 4]
    assert [server.peak_in_flight for server in fakes] == [4, 4, 4]


def test_a_slow_server_gets_fewer_requests_than_fast_ones(fakes):
    fakes[0].delay_s = 0.5
    assert ask(pool_endpoint(fakes), 24, at_once=3) == ["hi"] * 24
    slow, fast = fakes[0].posts, [s.posts for s in fakes[1:]]
    assert slow < min(fast), (slow, fast)  # least in flight, not round robin (8 each)
    assert fakes[0].peak_in_flight == 1


def test_the_endpoint_of_a_role_with_base_urls_names_every_server(fakes, tmp_path):
    urls = [s.endpoint.base_url for s in fakes]
    config = WorkspaceConfig(generator=EndpointModel(base_urls=urls, model="gen"),
                             serving={"endpoint_cooldown_s": 12, "max_retries": 2})
    endpoint = resolve_endpoint(config, "planner", tmp_path)
    assert endpoint.base_urls == tuple(urls) and endpoint.model == "gen"
    assert (endpoint.cooldown_s, endpoint.max_retries) == (12, 2)
    assert [s.base_urls for s in endpoint.servers()] == [(u,) for u in urls]
    single = resolve_endpoint(WorkspaceConfig(generator=EndpointModel(base_url=urls[0], model="g")), "user", tmp_path)
    assert single.base_urls == (urls[0],) and single.replicas == ()


# -- failover, cool-down and return ---------------------------------------------------------------


def test_a_server_that_starts_failing_is_left_out_and_named_once(fakes, capsys):
    fakes[1].fail_after = 2
    endpoint = pool_endpoint(fakes)
    answers = ask(endpoint, 30, at_once=3)
    assert answers == ["hi"] * 30  # not one request lost
    # The failing server got its two good requests and then those in flight when it failed
    # (at most 3); after that, none (its cool-down is 30 s).
    assert 3 <= fakes[1].posts <= 5
    assert fakes[0].posts + fakes[2].posts == 30 - 2
    said = notes(capsys)
    bad = fakes[1].endpoint.base_url
    assert sum(bad in line for line in said) == 1, said
    assert re.fullmatch(rf"note: server {re.escape(bad)} of m failed \(HTTP 500: .*scripted failure.*\); left out "
                        r"for 30s, its requests go to the other 2 servers", said[0]), said


def test_a_server_that_cannot_be_reached_is_left_out(fakes, capsys):
    endpoint = Endpoint(dead_url(), "m", replicas=(fakes[0].endpoint.base_url,), max_retries=0)
    assert ask(endpoint, 6, at_once=1) == ["hi"] * 6
    assert fakes[0].posts == 6
    (line,) = notes(capsys)
    assert endpoint.base_url in line and "cannot connect (ConnectError" in line
    assert line.endswith("its requests go to the other 1 server")


def test_a_server_comes_back_after_its_cool_down(fakes, capsys):
    a, b = fakes[:2]
    a.replies.append((503, {"error": "restarting"}))
    endpoint = pool_endpoint([a, b], cooldown_s=0.5)
    assert ask(endpoint, 1) == ["hi"]  # a failed, b answered
    assert (a.posts, b.posts) == (1, 1)
    assert ask(endpoint, 3, at_once=1) == ["hi"] * 3
    assert (a.posts, b.posts) == (1, 4)  # a is out
    time.sleep(0.6)
    assert ask(endpoint, 1) == ["hi"]
    assert (a.posts, b.posts) == (2, 4)  # back on trial: a has been sent fewest, and answers
    assert ask(endpoint, 4, at_once=1) == ["hi"] * 4
    assert (a.posts, b.posts) == (4, 6)  # in the pool again, taking turns with b
    said = notes(capsys)
    assert len(said) == 2, said
    assert a.endpoint.base_url in said[0] and "HTTP 503" in said[0] and "left out for 0.5s" in said[0]
    assert said[1] == f"note: server {a.endpoint.base_url} of m answers again; back in the pool"


def test_a_server_on_trial_gets_one_request_at_a_time(fakes):
    a, b = fakes[:2]
    a.fail_after = 0  # fails for good
    endpoint = pool_endpoint([a, b], cooldown_s=0.2)
    assert ask(endpoint, 1) == ["hi"]
    time.sleep(0.3)
    a.delay_s = 0.3
    assert ask(endpoint, 8) == ["hi"] * 8  # 8 at once: only one is tried on a, which fails again
    assert a.posts == 2 and a.peak_in_flight == 1


def test_when_every_server_fails_the_request_fails_in_one_line(fakes, capsys):
    dead = dead_url()
    fakes[0].fail_after = 0
    fakes[1].fail_after = 0
    endpoint = Endpoint(fakes[0].endpoint.base_url, "m", replicas=(fakes[1].endpoint.base_url, dead), max_retries=2)
    with pytest.raises(EndpointDown) as caught:
        ask(endpoint, 1)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"chat request for m failed on its 3 servers ({fakes[0].endpoint.base_url}, "
                              f"{fakes[1].endpoint.base_url}, {dead}): every one failed; the last, "
                              f"{fakes[1].endpoint.base_url}: HTTP 500"), message
    # Once on each server, then max_retries (2) more after back-offs, on the one due back first.
    assert (fakes[0].posts, fakes[1].posts) == (2, 2)
    said = notes(capsys)
    assert sum("left out for 30s" in line for line in said) == 3
    retries = [line.split(" in ")[0] for line in said if "retry" in line]
    assert retries == [f"note: chat request: every server of m is out; retry {k} of 4" for k in (3, 4)], said


def test_a_refusal_is_not_the_servers_fault(fakes):
    fakes[0].replies.append((400, {"error": "prompt too long"}))
    endpoint = pool_endpoint(fakes[:2])
    with pytest.raises(RequestRejected, match="request refused by .*prompt too long"):
        ask(endpoint, 1)
    assert (fakes[0].posts, fakes[1].posts) == (1, 0)  # not tried elsewhere
    assert ask(endpoint, 2) == ["hi", "hi"]  # and the server stays in the pool
    assert (fakes[0].posts, fakes[1].posts) == (2, 1)


def test_blocking_calls_go_through_the_pool_too(fakes, capsys):
    fakes[0].fail_after = 0
    fakes[1].responder = lambda path, body: (
        200, chat_reply('"ok"') if path.endswith("/chat/completions") else {"choices": [{"prompt_logprobs": [None]}]})
    endpoint = pool_endpoint(fakes[:2])
    assert structured_json(endpoint, [("user", "x")], {"type": "string"}) == "ok"
    assert [t.logprob for t in prompt_logprobs(endpoint, "a")] == [None]
    assert (fakes[0].posts, fakes[1].posts) == (1, 2)
    assert len(notes(capsys)) == 1


# -- serve start / status --------------------------------------------------------------------------


def test_serve_start_and_status_check_every_server_of_a_role(fakes, workspace, runner):
    live, dead = fakes[0].endpoint.base_url, dead_url()
    (workspace / "looptool.toml").write_text(f"[judge]\nkind = 'endpoint'\nbase_urls = ['{live}', '{dead}']\nmodel = 'm'\n")
    started = runner.invoke(app, ["serve", "start", "-w", str(workspace), "--role", "judge"])
    assert started.exit_code == 0, started.output  # one server answers: the role can work
    assert started.stderr.startswith(f"note: judge: endpoint {dead} is not usable: cannot reach {dead}/models")
    assert started.stderr.strip().endswith("its requests go to the other servers")
    status = runner.invoke(app, ["serve", "status", "-w", str(workspace)])
    assert status.exit_code == 1  # a server is down: worth a look
    (line,) = [line for line in status.stdout.splitlines() if line.startswith("judge")]
    assert line.startswith(f"judge      endpoint m at 2 servers: {live} reachable; {dead} UNREACHABLE (endpoint {dead}")

    (workspace / "looptool.toml").write_text(f"[judge]\nkind = 'endpoint'\nbase_urls = ['{dead}', '{dead_url()}']\n"
                                             "model = 'm'\n")
    failed = runner.invoke(app, ["serve", "start", "-w", str(workspace), "--role", "judge"])
    assert failed.exit_code == 1 and failed.stderr.startswith(f"error: endpoint {dead} is not usable: cannot reach")
    assert len(failed.stderr.strip().splitlines()) == 1


def test_the_terminal_ui_shows_the_health_of_every_server_of_a_role(fakes, tmp_path):
    from looptool.tui.widgets.endpoint_health import role_health

    live, dead = fakes[0].endpoint.base_url, dead_url()
    config = WorkspaceConfig(judge=EndpointModel(base_urls=[live, dead], model="m"),
                             generator=EndpointModel(base_urls=[live, fakes[1].endpoint.base_url], model="g"))
    rows = {row[0]: row for row in role_health(tmp_path, config)}
    assert rows["judge"][3:] == (f"{live}, {dead}", f"1 of 2 reachable; {dead} unreachable (ConnectError)")
    assert rows["generator"][4] == "all 2 reachable" and rows["user"][4] == "all 2 reachable"


def test_the_health_of_a_server_names_its_http_status_or_what_went_wrong(monkeypatch):
    """The terminal UI's words for `serve status`'s check: one check of a server, two readings."""
    import httpx

    from looptool.serving.client import endpoint_states, health_label

    url = "http://127.0.0.1:9/v1"
    answers = iter([httpx.Response(503, text="busy"), httpx.Response(200, text="<html>not json</html>")])

    def get(address, **kwargs):
        answer = next(answers)
        answer.request = httpx.Request("GET", address)
        return answer

    monkeypatch.setattr(httpx, "get", get)
    spec = EndpointModel(base_urls=[url], model="m")
    assert [health_label(problem) for _, problem in endpoint_states(spec)] == ["HTTP 503"]
    assert [health_label(problem) for _, problem in endpoint_states(spec)] == ["unreachable (JSONDecodeError)"]
    assert health_label(None) == "reachable"


# -- adapters ------------------------------------------------------------------------------------


def test_an_adapter_is_loaded_into_every_server(fakes):
    endpoint = pool_endpoint(fakes)
    load_lora(endpoint, "round-1", "/adapters/round-1")
    for server in fakes:
        assert [(path, body["lora_name"]) for path, body in server.requests] == [("/v1/load_lora_adapter", "round-1")]
    load_lora(endpoint, "adapter", "/adapters/new")  # a name a server serves is replaced there
    for server in fakes:
        assert [path for path, _ in server.requests[1:]] == ["/v1/unload_lora_adapter", "/v1/load_lora_adapter"]


def test_a_server_down_while_an_adapter_loads_gets_no_requests_for_it(fakes, capsys):
    a, b = fakes[:2]
    endpoint = Endpoint(a.endpoint.base_url, "m", replicas=(b.endpoint.base_url,), max_retries=0, cooldown_s=0.05)
    b.fail_after = 0
    load_lora(endpoint, "round-1", "/adapters/round-1")
    assert [p for p, _ in a.requests] == ["/v1/load_lora_adapter"]
    b.fail_after = None  # it is back, but without the adapter
    a.requests.clear()
    b.requests.clear()
    time.sleep(0.1)  # its cool-down is over

    async def run():
        return await asyncio.gather(*(acomplete(endpoint, [{"role": "user", "content": "x"}], model=m)
                                      for m in ["round-1"] * 4 + ["m"] * 4))

    asyncio.run(run())
    assert [body["model"] for _, body in a.requests].count("round-1") == 4
    assert "round-1" not in [body["model"] for _, body in b.requests] and len(b.requests) >= 1
    said = notes(capsys)
    assert any("requests for round-1 go to the servers that have it" in line for line in said), said


def test_an_adapter_no_server_could_load_is_an_error(fakes):
    endpoint = Endpoint(dead_url(), "m", replicas=(dead_url(),), max_retries=0)
    with pytest.raises(EndpointDown, match="loading LoRA adapter round-1 failed: none of the servers"):
        load_lora(endpoint, "round-1", "/adapters/round-1")
    fakes[0].replies.append((404, {"error": "no such adapter path"}))
    with pytest.raises(ServingError, match="loading LoRA adapter round-1 failed: HTTP 404"):
        load_lora(pool_endpoint(fakes), "round-1", "/nowhere")  # a refusal is not skipped


# -- the acceptance case: a seed run over three servers, one failing midway ---------------------


def seed_workspace(root: Path, urls: list[str]) -> Path:
    ws = root / "ws"
    assert CliRunner().invoke(app, ["init", str(ws)]).exit_code == 0
    role = f'kind = "endpoint"\nbase_urls = {json.dumps(urls)}\nmodel = "m"\n'
    (ws / "looptool.toml").write_text(
        'name = "t"\n[seed]\nguidance = "grammar"\njudge_check = "off"\n'
        + "".join(f"[{section}]\n{role}" for section in ("policy", "generator", "judge"))
    )
    with Store.open(ws / "looptool.db") as store:
        for domain, specs in TOOLS.items():
            store.upsert_tools([ToolSpec.model_validate(s) for s in specs], domain=domain, source="test")
    return ws


def seed_rows(ws: Path) -> dict:
    with Store.open(ws / "looptool.db") as store:
        dialogues = store.dialogue_rows()
        samples = list(store.iter_samples())
        traces = sorted((r["id"], t["call_key"]) for r in dialogues for t in store.traces(r["id"]))
        return {
            "dialogues": sorted((r["id"], r["status"]) for r in dialogues),
            "samples": sorted((s.id, s.model_dump_json()) for s in samples),
            "n_samples": len(samples),
            "traces": traces,
            "messages": sorted((r["id"], m["idx"], m["message"].model_dump_json())
                               for r in dialogues for m in store.message_rows(r["id"])),
        }


@pytest.mark.slow
def test_seed_over_three_servers_with_one_failing_midway(tmp_path, runner):
    servers = [FakeOpenAI() for _ in range(3)]
    reference = FakeOpenAI()
    try:
        for server in (*servers, reference):
            server.responder = json_schema_responder()  # the same prompt gets the same answer anywhere
        servers[2].fail_after = 5
        urls = [s.endpoint.base_url for s in servers]
        ws = seed_workspace(tmp_path / "pool", urls)
        result = runner.invoke(app, ["seed", "-w", str(ws), "--n", "12", "--concurrency", "4"])
        assert result.exit_code == 0, result.output
        assert "seed: 12 verified, 0 dropped" in result.stdout
        # The failing server is named once, whatever number of requests failed there.
        assert result.output.count(urls[2]) == 1, result.output
        assert f"server {urls[2]} of m failed (HTTP 500" in result.stderr
        assert urls[0] not in result.output and urls[1] not in result.output
        assert servers[2].posts > 5 and min(servers[0].posts, servers[1].posts) > 5

        rows = seed_rows(ws)
        assert len(rows["dialogues"]) == 12 and {status for _, status in rows["dialogues"]} == {"done"}
        assert len(set(rows["traces"])) == len(rows["traces"])  # one trace per agent call, none twice
        assert len({sid for sid, _ in rows["samples"]}) == rows["n_samples"]
        # Every answer that came back is in the trace once; the failed requests left nothing.
        answered = sum(s.posts for s in servers) - (servers[2].posts - 5)
        assert len(rows["traces"]) == answered

        # The same run against one healthy server makes the same data.
        single = seed_workspace(tmp_path / "single", [reference.endpoint.base_url])
        assert runner.invoke(app, ["seed", "-w", str(single), "--n", "12", "--concurrency", "4"]).exit_code == 0
        assert seed_rows(single) == rows
    finally:
        for server in (*servers, reference):
            server.close()


def test_an_endpoint_is_printed_without_its_passwords():
    endpoint = Endpoint("http://u:pw1@a/v1", "m", api_key="sk-1", replicas=("http://u:pw2@b/v1",))
    for text in (repr(endpoint), endpoint.display_url, repr(endpoint.servers()[1])):
        assert "pw1" not in text and "pw2" not in text and "sk-1" not in text
    assert endpoint.display_url == "http://u:***@a/v1, http://u:***@b/v1"
    assert dataclasses.replace(endpoint, replicas=()).base_urls == ("http://u:pw1@a/v1",)


def test_endpoint_states_names_each_server_and_what_is_wrong(monkeypatch):
    from looptool.serving import client

    def check(endpoint, timeout_s=5.0):
        if "down" in endpoint.base_url:
            raise ServingError(f"endpoint {endpoint.base_url} is not usable: connection refused")
        return [endpoint.model]

    monkeypatch.setattr(client, "check_endpoint", check)
    spec = EndpointModel(base_urls=["http://up:8000/v1", "http://down:8000/v1"], model="m")
    states = client.endpoint_states(spec)
    assert [url.rstrip("/") for url, _ in states] == ["http://up:8000/v1", "http://down:8000/v1"]
    assert states[0][1] is None and isinstance(states[1][1], ServingError)
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    keyless = EndpointModel(base_url="http://up:8000/v1", model="m", api_key_env="NO_SUCH_KEY_VAR")
    assert "NO_SUCH_KEY_VAR" in str(client.endpoint_states(keyless)[0][1])  # a missing key is a problem too
