"""Server lifecycle without a model: crash reports, stale state files, port checks."""

import socket
import subprocess
import sys

import pytest

from looptool.config import ServingConfig
from looptool.serving.server import ServerInfo, ServerManager, ServingError, port_is_free, server_env


def test_crashed_server_is_reported_with_its_log_tail(tmp_path):
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "print('loading'); print('CUDA out of memory'); raise SystemExit(3)"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    info = ServerInfo("m", "m", "/m", "127.0.0.1", 9, proc.pid, str(log), 0.0)
    manager = ServerManager(tmp_path, ServingConfig(startup_timeout_s=30))
    with pytest.raises(ServingError) as caught:
        manager._wait_healthy(info, proc)
    assert "exited (code 3) before it was ready" in str(caught.value)
    assert "CUDA out of memory" in str(caught.value)


def test_a_stale_state_file_never_kills_an_unrelated_process(tmp_path):
    # The pid in a leftover state file now belongs to some other program (here: a sleeper).
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        manager = ServerManager(tmp_path, ServingConfig())
        stale = ServerInfo("m", "m", "/m", "127.0.0.1", 9, other.pid, str(tmp_path / "log"), 0.0)
        manager._write_state(stale)
        assert manager.state(stale) == "dead"
        assert manager.stop_all() == [(stale, False)]
        assert other.poll() is None  # still running
        assert manager.known() == []
    finally:
        other.kill()
        other.wait()


def test_port_is_free_sees_a_listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
    assert port_is_free("127.0.0.1", port)


def test_a_cpu_server_on_two_cores_gives_the_model_both_and_a_user_setting_wins():
    env = server_env(ServingConfig(), "vllm-cpu", {}, cores=2)
    assert env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    # More cores: vLLM's own reservation stands.
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in server_env(ServingConfig(), "vllm-cpu", {}, cores=8)
    # The config field, then the user's environment, override the default.
    assert server_env(ServingConfig(cpu_reserved_cores=1), "vllm-cpu", {}, cores=2)["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    mine = server_env(ServingConfig(), "vllm-cpu", {"VLLM_CPU_NUM_OF_RESERVED_CPU": "1"}, cores=2)
    assert mine["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "1"
    # A CUDA server is left alone.
    assert "VLLM_CPU_NUM_OF_RESERVED_CPU" not in server_env(ServingConfig(), "vllm", {}, cores=2)


def test_bfloat16_is_used_only_where_the_cpu_computes_it():
    from looptool.serving.server import cpu_has_fast_bf16

    assert cpu_has_fast_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_fast_bf16("flags\t\t: fpu avx2 amx_bf16 amx_tile\n")
    assert not cpu_has_fast_bf16("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")


def test_tensor_and_data_parallel_reach_a_cuda_server_and_are_refused_on_vllm_cpu(tmp_path):
    from looptool.config import ManagedModel
    from looptool.serving.server import check_parallelism, vllm_command

    plain = ManagedModel()
    parallel = ManagedModel(tensor_parallel_size=2, data_parallel_size=4)
    serving = ServingConfig()
    cuda = vllm_command(parallel, tmp_path, "127.0.0.1", 8000, "vllm", serving)
    assert cuda[cuda.index("--tensor-parallel-size") + 1] == "2"
    assert cuda[cuda.index("--data-parallel-size") + 1] == "4"
    for flavour in ("vllm", "vllm-cpu"):  # at 1, the command is what it always was
        command = vllm_command(plain, tmp_path, "127.0.0.1", 8000, flavour, serving)
        assert "--tensor-parallel-size" not in command and "--data-parallel-size" not in command
    check_parallelism(parallel, "vllm")
    check_parallelism(plain, "vllm-cpu")
    with pytest.raises(ServingError, match=r"^tensor_parallel_size = 2 \(model smollm2-135m-instruct\) needs the CUDA "
                                           "build of vLLM, and this machine has vllm-cpu"):
        check_parallelism(parallel, "vllm-cpu")
    with pytest.raises(ServingError, match="^data_parallel_size = 3 .* list them under an endpoint role's base_urls$"):
        check_parallelism(ManagedModel(data_parallel_size=3), "vllm-cpu")


def test_a_managed_server_with_parallelism_on_vllm_cpu_is_refused_before_anything_starts(tmp_path, monkeypatch):
    from looptool.config import ManagedModel

    monkeypatch.setattr("looptool.serving.server.vllm_flavour", lambda: "vllm-cpu")
    manager = ServerManager(tmp_path, ServingConfig())
    with pytest.raises(ServingError, match="tensor_parallel_size = 2"):
        manager.start(ManagedModel(tensor_parallel_size=2), log=lambda *_: None)
    assert manager.known() == [] and not (tmp_path / "logs").exists()
