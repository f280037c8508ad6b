"""`looptool init --preset cpu | gpu-24gb`: sizes for the machine, one source with the demo's."""

from __future__ import annotations

from looptool import demo, presets
from looptool.cli import app
from looptool.config import WorkspaceConfig, load_config
from tests.unit.test_cli import assert_one_line_error, event_count


def test_init_with_the_cpu_preset_writes_exactly_the_demos_sizes(tmp_path, runner):
    result = runner.invoke(app, ["init", str(tmp_path / "cpu"), "--preset", "cpu"])
    assert result.exit_code == 0, result.output
    assert "the cpu preset's sizes" in result.output
    written = load_config(tmp_path / "cpu").model_dump()
    assert written == demo.demo_config("cpu").model_dump()
    for section, values in demo.DEMO_SIZES.items():
        for field, value in values.items():
            assert written[section][field] == value, (section, field)
    assert written != WorkspaceConfig(name="cpu").model_dump()  # not the defaults


def test_the_demo_reads_its_sizes_from_the_cpu_preset(monkeypatch):
    # One source: a value changed in the preset is the demo's value too.
    assert demo.DEMO_SIZES == presets.preset_values("cpu")
    changed = {**presets.CPU, "loop": {**presets.CPU["loop"], "round_size": presets.Setting(7, "test")}}
    monkeypatch.setitem(presets.PRESETS, "cpu", changed)
    assert demo.demo_config("d").loop.round_size == 7


def test_every_preset_value_is_a_field_with_a_reason_and_validates():
    for name, sections in presets.PRESETS.items():
        config = presets.preset_config("x", name)
        for section, fields in sections.items():
            model = type(getattr(config, section))
            for field, setting in fields.items():
                assert field in model.model_fields, (name, section, field)
                assert len(setting.why) > 15, (name, section, field)  # says why, not just what
                assert getattr(getattr(config, section), field) == setting.value


def test_the_gpu_preset_fits_one_24gb_card_by_its_own_arithmetic():
    config = presets.preset_config("x", "gpu-24gb")
    train = config.train
    assert train.quantization == "nf4" and config.seed.history_token_budget <= train.max_prompt_tokens
    # What presets.py reckons for an 8B policy: ~6 GB of nf4 weights, 0.14 MiB of KV cache per token,
    # every rollout of a step sampled at once.
    rollouts = train.num_generations * train.prompts_per_step
    kv_gb = rollouts * (train.max_prompt_tokens + train.max_completion_tokens) * 0.14 / 1024
    assert 6 + kv_gb < 24 * 0.6, kv_gb  # room left for the loss pass and the allocator


def test_an_unknown_preset_is_one_line_and_makes_nothing(tmp_path, runner):
    result = runner.invoke(app, ["init", str(tmp_path / "ws"), "--preset", "gpu"])
    assert_one_line_error(result, "--preset: unknown preset 'gpu'; presets are: cpu, gpu-24gb")
    assert not (tmp_path / "ws").exists()


def test_a_preset_on_an_existing_workspace_changes_nothing_and_says_so(workspace, runner):
    before = (workspace / "looptool.toml").read_text()
    result = runner.invoke(app, ["init", str(workspace), "--preset", "cpu"])
    assert result.exit_code == 0 and "--preset cpu not applied" in result.output
    assert (workspace / "looptool.toml").read_text() == before and event_count(workspace) == 1


def test_init_help_explains_the_presets_and_the_gpu_preset_says_what_is_next(tmp_path, runner):
    text = " ".join(runner.invoke(app, ["init", "--help"]).output.split())
    for fragment in ("--preset", "cpu", "gpu-24gb", "looptool demo", "QLoRA"):
        assert fragment in text, fragment
    result = runner.invoke(app, ["init", str(tmp_path / "gpu"), "--preset", "gpu-24gb"])
    assert result.exit_code == 0 and "set [policy] model" in result.output
    assert load_config(tmp_path / "gpu").train.quantization == "nf4"
