from pathlib import Path

import pytest

from looptool.config import (
    EMBEDDED_MODEL,
    ConfigError,
    EndpointModel,
    ManagedModel,
    WorkspaceConfig,
    dump_config,
    load_config,
    save_config,
)


def write(ws: Path, text: str) -> None:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "looptool.toml").write_text(text)


def test_defaults_are_the_embedded_model_everywhere():
    config = WorkspaceConfig()
    for role in ("policy", "generator", "judge", "planner", "user", "tool", "expander"):
        spec = config.role(role)
        assert isinstance(spec, ManagedModel) and spec.model == EMBEDDED_MODEL


def test_round_trip_through_toml(tmp_path):
    config = WorkspaceConfig(
        name="x",
        judge=EndpointModel(base_url="http://judge:8000/v1/", model="Qwen3-32B", api_key_env="JUDGE_KEY"),
        planner=ManagedModel(model=str(tmp_path), port=8123),
    )
    save_config(tmp_path, config)
    loaded = load_config(tmp_path)
    assert loaded == config
    assert loaded.judge.base_url == "http://judge:8000/v1"  # trailing slash dropped
    assert "api_key_env" in dump_config(config) and "secret" not in dump_config(config)


def test_several_servers_of_a_role_round_trip_and_a_single_base_url_still_works(tmp_path):
    write(tmp_path, "[generator]\nkind = 'endpoint'\nmodel = 'm'\nbase_urls = ['http://a:8000/v1/', 'https://b/v1']\n"
                    "[judge]\nkind = 'endpoint'\nmodel = 'm'\nbase_url = 'http://j/v1'\n")
    config = load_config(tmp_path)
    assert config.generator.urls == ["http://a:8000/v1", "https://b/v1"]
    assert config.judge.urls == ["http://j/v1"] and config.judge.base_urls is None
    save_config(tmp_path, config)
    assert load_config(tmp_path) == config
    text = dump_config(config)
    assert 'base_urls = [\n    "http://a:8000/v1",' in text and 'base_url = "http://j/v1"' in text


def test_agent_roles_fall_back_to_generator():
    gen = EndpointModel(base_url="http://g/v1", model="gen")
    config = WorkspaceConfig(generator=gen, tool=ManagedModel())
    assert config.role("planner") == gen and config.role("expander") == gen
    assert isinstance(config.role("tool"), ManagedModel)
    with pytest.raises(ConfigError, match="unknown role 'critic'"):
        config.role("critic")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name = [", "invalid TOML"),
        ("[policy]\nkind = 'managed'\nport = 70000\n", "policy.port: Input should be less than or equal to 65535 (got 70000)"),
        ("[policy]\nkind = 'cloud'\n", "policy"),
        ("[judge]\nkind = 'endpoint'\nmodel = 'm'\nbase_url = 'ftp://x'\n", "judge.base_url"),
        ("[judge]\nkind = 'endpoint'\nbase_url = 'http://x/v1'\n", "judge.model: Field required"),
        ("[serving]\nstartup_timeout_s = -1\n", "serving.startup_timeout_s"),
        ("[serving]\ntypo = 1\n", "serving.typo: Extra inputs are not permitted"),
        ("[policy]\nmodel = '/no/such/dir'\n", "policy.model"),
        ("[policy]\nmax_lora_rank = 12\n", "policy.max_lora_rank"),
        ("[judge]\nkind = 'endpoint'\nmodel = 'm'\nbase_urls = ['http://a/v1', 'ftp://b']\n",
         "judge.base_urls.1: Value error, must start with http:// or https:// (got 'ftp://b')"),
        ("[judge]\nkind = 'endpoint'\nmodel = 'm'\nbase_urls = ['http://a/v1', 'http://a/v1/']\n",
         "judge: Value error, base_urls names 'http://a/v1' twice"),
        ("[judge]\nkind = 'endpoint'\nmodel = 'm'\nbase_urls = []\n", "judge: Value error, base_urls is empty"),
        ("[judge]\nkind = 'endpoint'\nmodel = 'm'\nbase_urls = 'http://a/v1'\n", "judge.base_urls: Input should be a valid list"),
        ("[judge]\nkind = 'endpoint'\nmodel = 'm'\nbase_url = 'http://a/v1'\nbase_urls = ['http://b/v1']\n",
         "judge: Value error, give base_url or base_urls, not both"),
        ("[judge]\nkind = 'endpoint'\nmodel = 'm'\n", "judge: Value error, base_url is required (or base_urls"),
        ("[serving]\nendpoint_cooldown_s = 0\n", "serving.endpoint_cooldown_s: Input should be greater than 0"),
        ("[policy]\ntensor_parallel_size = 0\n", "policy.tensor_parallel_size: Input should be greater than or equal to 1"),
        ("[policy]\ndata_parallel_size = 100\n", "policy.data_parallel_size: Input should be less than or equal to 64"),
    ],
)
def test_invalid_config_names_path_and_value(tmp_path, text, fragment):
    write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "looptool.toml"))


def test_missing_config_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match="run 'looptool init"):
        load_config(tmp_path)


def test_two_models_on_one_port_rejected(tmp_path):
    other = tmp_path / "ckpt"
    other.mkdir()
    write(tmp_path, f"[policy]\nport = 8100\n[generator]\nport = 8100\n[judge]\nport = 8100\nmodel = '{other}'\n")
    with pytest.raises(ConfigError, match="port 8100 is given to two different models"):
        load_config(tmp_path)


def test_roles_sharing_a_model_must_share_server_settings(tmp_path):
    write(tmp_path, "[policy]\nmax_model_len = 4096\n")
    with pytest.raises(ConfigError, match="policy and generator use model 'smollm2-135m-instruct' with different server"):
        load_config(tmp_path)


def test_grpo_schedule_defaults_and_choices(tmp_path):
    train = WorkspaceConfig().train
    assert (train.lr_scheduler, train.weight_decay) == ("constant", 0.01)
    write(tmp_path, "[train]\nlr_scheduler = 'cosine'\nweight_decay = 0.1\n")
    assert load_config(tmp_path).train.lr_scheduler == "cosine"
    write(tmp_path, "[train]\nlr_scheduler = 'exponential'\n")
    with pytest.raises(ConfigError, match=r"train.lr_scheduler: .*'constant'.*\(got 'exponential'\)$"):
        load_config(tmp_path)
    write(tmp_path, "[train]\nweight_decay = -0.1\n")
    with pytest.raises(ConfigError, match="train.weight_decay"):
        load_config(tmp_path)


def test_api_key_is_read_from_the_environment_only(monkeypatch):
    spec = EndpointModel(base_url="http://x/v1", model="m", api_key_env="LT_TEST_KEY")
    monkeypatch.delenv("LT_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="LT_TEST_KEY"):
        spec.api_key()
    monkeypatch.setenv("LT_TEST_KEY", "sk-123")
    assert spec.api_key() == "sk-123"
    assert "sk-123" not in spec.model_dump_json()


def test_config_reference_doc_is_current():
    from looptool.config_doc import config_reference

    doc = Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md"
    assert doc.read_text() == config_reference(), "regenerate docs/CONFIG.md from config_reference()"


def test_init_writes_a_config_that_loads_and_documents_itself(workspace):
    text = (workspace / "looptool.toml").read_text()
    assert text.startswith("# LoopTool workspace configuration")
    assert load_config(workspace).policy.model == EMBEDDED_MODEL


def test_bfcl_categories_of_the_loop_are_checked_at_load():
    from looptool.config import LoopConfig

    assert LoopConfig(eval_bfcl_categories="").eval_bfcl_categories == ""  # none
    assert LoopConfig(eval_bfcl_categories="all").eval_bfcl_categories == "all"
    assert LoopConfig(eval_bfcl_categories="simple, parallel").eval_bfcl_categories == "simple, parallel"
    with pytest.raises(ValueError, match="unknown BFCL category 'simpel'"):
        LoopConfig(eval_bfcl_categories="simple,simpel")
    assert LoopConfig().eval_acebench_categories == ""  # ACEBench only when asked for
    assert LoopConfig(eval_acebench_categories="special, normal_atom_bool").eval_acebench_limit == 10
    with pytest.raises(ValueError, match="unknown ACEBench category 'normal_atom_boll'"):
        LoopConfig(eval_acebench_categories="special,normal_atom_boll")
    with pytest.raises(ValueError, match="agent categories"):
        LoopConfig(eval_acebench_categories="agent")


def test_report_to_takes_tensorboard_trackio_both_or_none(tmp_path):
    assert WorkspaceConfig().train.trackers() == []  # 'none': the step rows in looptool.db only
    write(tmp_path, "[train]\nreport_to = 'tensorboard'\n")
    assert load_config(tmp_path).train.trackers() == ["tensorboard"]
    write(tmp_path, "[train]\nreport_to = ['trackio', 'tensorboard', 'trackio']\n")
    assert load_config(tmp_path).train.trackers() == ["trackio", "tensorboard"]
    for wrong in ("'wandb'", "['tensorboard', 'none']", "1"):
        write(tmp_path, f"[train]\nreport_to = {wrong}\n")
        with pytest.raises(ConfigError, match=r"train.report_to: .*must be 'none', 'tensorboard', 'trackio' or a list"):
            load_config(tmp_path)


def test_processes_must_share_out_a_step_evenly(tmp_path):
    from looptool.config import TrainConfig

    assert TrainConfig().grpo_batches() == (8, 4)  # one process: a group per pass, a pass per prompt
    assert TrainConfig(processes=2).grpo_batches() == (8, 2)  # the prompts shared out: whole groups per pass
    assert TrainConfig(processes=2, prompts_per_step=1, num_generations=4).grpo_batches() == (2, 1)  # groups split
    write(tmp_path, "[train]\nprocesses = 3\n")
    with pytest.raises(ConfigError, match=r"train: .*processes \(3\) must divide prompts_per_step \(4\) or "
                                          r"num_generations \(8\)"):
        load_config(tmp_path)
    write(tmp_path, "[train]\nprocesses = 2\nsft_batch_size = 5\n")
    with pytest.raises(ConfigError, match=r"processes \(2\) must divide sft_batch_size \(5\)"):
        load_config(tmp_path)
    write(tmp_path, "[train]\nprocesses = 0\n")
    with pytest.raises(ConfigError, match=r"train.processes: Input should be greater than or equal to 1 \(got 0\)"):
        load_config(tmp_path)


def test_deepspeed_config_must_be_a_json_object(tmp_path):
    ws = tmp_path / "ws"
    write(ws, f"[train]\ndeepspeed_config = '{tmp_path / 'ds.json'}'\n")
    with pytest.raises(ConfigError, match=r"train.deepspeed_config: Value error, no such file: .*ds.json"):
        load_config(ws)
    (tmp_path / "ds.json").write_text("[1, 2")
    with pytest.raises(ConfigError, match=r"train.deepspeed_config: .*is not a readable JSON file"):
        load_config(ws)
    (tmp_path / "ds.json").write_text('{"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}')
    assert load_config(ws).train.deepspeed_config == str(tmp_path / "ds.json")
