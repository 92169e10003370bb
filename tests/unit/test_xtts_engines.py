"""The engine registry, the engine choice, settings, and the XTTS engine's wiring (with a
stand-in model)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from tests.support import ROOT, free_port
from xtts.__main__ import EXIT_UNAVAILABLE
from xtts.config import Settings, describe_error
from xtts.engines.base import (
    ENGINES,
    EngineSetupError,
    EngineSpec,
    EngineUnavailable,
    TTSEngine,
    create_engine,
    not_installed,
)
from xtts.engines.choice import InvalidEngineSetting, choose_engine
from xtts.engines.xtts import XttsEngine
from xtts.voices import Latents, Voice, named_latents


def _settings(**values: Any) -> Settings:
    # _env_file=None: a developer's .env must not change what the tests see.
    return Settings(_env_file=None, **values)


def _engine(**values: Any) -> TTSEngine:
    """The engine the settings pick, created as the server creates it."""
    settings = _settings(**values)
    return create_engine(choose_engine(settings).name, settings)


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_every_registered_engine_is_created_without_loading_anything(name, tmp_path):
    engine = _engine(tts_engine=name, xtts_model_dir=tmp_path)
    assert isinstance(engine, TTSEngine)
    assert engine.name == name
    assert engine.default_voice


# What an engine loads only in `load()`: none of it may come in with the registry or creation.
SPEECH_STACKS = ("TTS", "torch", "onnxruntime", "hibari", "piper", "transformers")


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_creating_an_engine_imports_none_of_its_speech_stack(name, tmp_path):
    """In a fresh interpreter, as the server starts: hibari and onnxruntime are installed here,
    so an engine module that imported them at the top would fail this."""
    code = (
        "import json, sys\n"
        "from xtts.config import Settings\n"
        "from xtts.engines.base import create_engine\n"
        "from xtts.engines.choice import choose_engine\n"
        f"settings = Settings(_env_file=None, tts_engine={name!r}, "
        f"xtts_model_dir={str(tmp_path)!r})\n"
        "create_engine(choose_engine(settings).name, settings)\n"
        f"print(json.dumps([m for m in {SPEECH_STACKS!r} if m in sys.modules]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) == [], f"creating {name} imported {run.stdout}"


def test_settings_defaults():
    settings = _settings()
    assert (settings.tts_engine, settings.tts_device, settings.tts_port) == ("hibari", "cpu", 8001)
    assert (settings.tts_max_text_chars, settings.tts_threads, settings.tts_voice) == (
        2000,
        1,
        None,
    )


def _xtts_weights(folder):
    for name in ("config.json", "model.pth"):
        (folder / name).write_text("{}")
    return folder


def _coqui_tts(installed: bool, monkeypatch) -> None:
    """Whether coqui-tts (the `TTS` package) and torch look installed; they do not install here."""
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        if name in ("TTS", "torch"):
            return object() if installed else None
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_auto_picks_xtts_where_its_weights_and_coqui_tts_are_installed(tmp_path, monkeypatch):
    _coqui_tts(True, monkeypatch)
    choice = choose_engine(_settings(tts_engine="auto", xtts_model_dir=_xtts_weights(tmp_path)))
    assert choice.name == "xtts"
    assert choice.auto_choice == f"TTS_ENGINE=auto: XTTS v2 from {tmp_path}"


@pytest.mark.parametrize(
    ("weights", "coqui"), [(False, True), (True, False)], ids=["no weights", "no coqui-tts"]
)
def test_auto_falls_back_to_hibari_without_xtts(weights, coqui, tmp_path, monkeypatch):
    _coqui_tts(coqui, monkeypatch)
    folder = _xtts_weights(tmp_path) if weights else tmp_path
    choice = choose_engine(_settings(tts_engine="auto", xtts_model_dir=folder))
    assert choice.name == "hibari"
    assert choice.auto_choice.startswith("TTS_ENGINE=auto: hibari, as XTTS v2 is not installed")
    assert choose_engine(_settings(tts_engine="auto")).name == "hibari"
    assert choose_engine(_settings(tts_engine="piper")).auto_choice == ""


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"tts_engine": "foo"}, "TTS_ENGINE: must be one of auto, hibari, piper, xtts (got 'foo')"),
        ({"tts_device": "gpu"}, "TTS_DEVICE: must be one of cpu, cuda, mps (got 'gpu')"),
        ({"tts_port": 0}, "TTS_PORT: input should be greater than or equal to 1 (got 0)"),
        ({"tts_max_text_chars": "many"}, "TTS_MAX_TEXT_CHARS: input should be a valid integer"),
        ({"tts_engine": "xtts"}, "XTTS_MODEL_DIR: required when TTS_ENGINE=xtts"),
        (
            {"tts_engine": "xtts", "xtts_model_dir": "/no/such/dir"},
            "XTTS_MODEL_DIR: not a directory",
        ),
    ],
)
def test_bad_settings_are_described_in_one_line_naming_the_variable(values, expected):
    """As `python -m xtts` reports them: the settings' own checks, then the engine choice's."""
    try:
        choose_engine(_settings(**values))
    except ValidationError as error:
        lines = describe_error(error)
    except InvalidEngineSetting as error:
        lines = [str(error)]
    else:
        pytest.fail(f"{values} were accepted")
    assert len(lines) == 1
    assert lines[0].startswith(expected)


def test_a_bad_variable_stops_start_up_with_one_line_and_exit_code_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "xtts"],
        cwd=tmp_path,  # no .env here
        env={"PATH": "", "PYTHONPATH": str(ROOT), "TTS_ENGINE": "foo"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "TTS_ENGINE: must be one of auto, hibari, piper, xtts (got 'foo')"
    )


@pytest.mark.parametrize(
    ("engine", "module", "extra"), [("hibari", "hibari", "tts"), ("piper", "piper", "piper")]
)
def test_a_missing_engine_package_names_the_extra_to_install(engine, module, extra, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` fail
    with pytest.raises(EngineUnavailable, match=f"uv sync --extra {extra}"):
        _engine(tts_engine=engine).load()


def test_the_registry_tells_an_engine_whose_packages_are_not_installed(monkeypatch):
    assert not_installed("hibari") is None  # installed here (the tts extra)
    fake = EngineSpec("tests:Nothing", "fake", ("hibari", "no_such_speech_package"))
    monkeypatch.setitem(ENGINES, "fake", fake)
    assert not_installed("fake") == (
        "TTS_ENGINE=fake needs packages that are not installed (no_such_speech_package); "
        "install them with `uv sync --extra fake`"
    )


def _serve_once(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """`python -m xtts` until it stops by itself (its engine failed to load)."""
    return subprocess.run(
        [sys.executable, "-m", "xtts"],
        cwd=tmp_path,  # no .env here
        env={"PATH": "", "PYTHONPATH": str(ROOT), "TTS_PORT": str(free_port()), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_engine_that_cannot_run_here_exits_with_exit_unavailable(tmp_path):
    """No XTTS v2 weights in XTTS_MODEL_DIR: `make run` falls back on this exit status."""
    result = _serve_once(tmp_path, TTS_ENGINE="xtts", XTTS_MODEL_DIR=str(tmp_path))
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr[-2000:]
    assert "XTTS_MODEL_DIR: " in result.stderr and "lacks config.json" in result.stderr


def test_a_misconfigured_engine_exits_with_1_not_exit_unavailable(tmp_path):
    result = _serve_once(tmp_path, TTS_ENGINE="hibari", TTS_VOICE="nobody")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "TTS_VOICE: the hibari engine has no voice 'nobody'" in result.stderr


@pytest.mark.parametrize("engine", ["hibari", "piper"])
def test_a_voice_the_engine_lacks_stops_loading_naming_tts_voice(engine):
    with pytest.raises(EngineSetupError, match=r"TTS_VOICE: .* has no voice 'nobody'"):
        _engine(tts_engine=engine, tts_voice="nobody").load()


def test_xtts_engine_without_coqui_tts_names_the_extra(tmp_path, monkeypatch):
    for name in ("config.json", "model.pth"):
        (tmp_path / name).write_text("{}")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(EngineSetupError, match="uv sync --extra xtts"):
        _engine(tts_engine="xtts", xtts_model_dir=tmp_path).load()


def test_xtts_engine_refuses_a_model_dir_without_the_model(tmp_path):
    with pytest.raises(
        EngineSetupError, match=r"XTTS_MODEL_DIR: .* lacks config\.json, model\.pth"
    ):
        _engine(tts_engine="xtts", xtts_model_dir=tmp_path).load()


# --- XTTS engine wiring, with the coqui-tts model and torch faked at the outermost boundary ---


class _FakeTensor:
    """The few torch.Tensor methods the engine uses, over numpy."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.asarray(array)

    def reshape(self, *shape: int) -> _FakeTensor:
        return _FakeTensor(self.array.reshape(*shape))

    def unsqueeze(self, dim: int) -> _FakeTensor:
        return _FakeTensor(np.expand_dims(self.array, dim))

    def detach(self) -> _FakeTensor:
        return self

    def to(self, _device: str) -> _FakeTensor:
        return self

    def float(self) -> _FakeTensor:
        return _FakeTensor(self.array.astype(np.float32))

    def numpy(self) -> np.ndarray:
        return self.array


class _FakeTorch:
    @staticmethod
    def from_numpy(array: np.ndarray) -> _FakeTensor:
        return _FakeTensor(array)


def _studio_speaker(name: str) -> dict[str, _FakeTensor]:
    latents = named_latents(name)
    rng = np.random.default_rng(len(name))
    return {
        # The shapes coqui-tts keeps them in: (1, 512, 1) and (1, 32, 1024).
        "speaker_embedding": _FakeTensor(latents.speaker_embedding.reshape(1, 512, 1)),
        "gpt_cond_latent": _FakeTensor(rng.normal(size=(1, 32, 1024)).astype(np.float32)),
    }


class _FakeXttsModel:
    """Stands in for TTS.tts.models.xtts.Xtts: records what it is asked to do."""

    def __init__(self) -> None:
        self.speaker_manager = type("Speakers", (), {})()
        self.speaker_manager.speakers = {
            "Claribel Dervla": _studio_speaker("Claribel Dervla"),
            "Ana Florence": _studio_speaker("Ana Florence"),
        }
        self.tokenizer = type("Tokenizer", (), {"char_limits": {"en": 250, "zh": 82}})()
        self.calls: list[dict[str, Any]] = []

    def inference_stream(self, text, language, gpt_cond_latent, speaker_embedding, **options):
        self.calls.append(
            {
                "text": text,
                "language": language,
                "gpt_cond_latent": gpt_cond_latent.array,
                "speaker_embedding": speaker_embedding.array,
                **options,
            }
        )
        for _ in range(3):
            yield _FakeTensor(np.full(4800, 0.25, dtype=np.float32))

    def get_conditioning_latents(self, audio_path):
        with open(audio_path[0], "rb") as file:
            self.cloned_from = file.read()
        return (
            _FakeTensor(np.ones((1, 32, 1024), dtype=np.float32)),
            _FakeTensor(np.full((1, 512, 1), 0.5, dtype=np.float32)),
        )


def _attached(voice: str | None = None, tmp_path=None) -> tuple[XttsEngine, _FakeXttsModel]:
    engine = XttsEngine(_settings(tts_voice=voice))
    model = _FakeXttsModel()
    engine.attach(model, _FakeTorch(), ["en", "de", "zh-cn"])
    return engine, model


def test_xtts_engine_with_fake_model_offers_the_speaker_files_voices():
    engine, _ = _attached()
    assert engine.can_clone
    assert list(engine.voices()) == ["Claribel Dervla", "Ana Florence"]
    assert engine.languages == ["en", "de", "zh-cn"]
    assert engine.voices()["Ana Florence"].gpt_cond_latent.shape == (32, 1024)


def test_xtts_engine_with_fake_model_offers_only_tts_voice_when_set():
    engine, _ = _attached(voice="Ana Florence")
    assert list(engine.voices()) == ["Ana Florence"]
    with pytest.raises(EngineSetupError, match="TTS_VOICE: the xtts engine has no voice 'Nobody'"):
        _attached(voice="Nobody")


def test_xtts_engine_with_fake_model_passes_any_latents_through_to_the_model():
    engine, model = _attached()
    rng = np.random.default_rng(7)
    custom = Latents.from_lists(rng.normal(size=512), rng.normal(size=(32, 1024)))
    voice = engine.resolve_voice(custom)
    assert voice.name == "custom"

    chunks = list(engine.synthesize("Hallo Welt.", voice, "de", stream_chunk_size=7))

    assert [chunk.shape for chunk in chunks] == [(4800,)] * 3
    call = model.calls[0]
    assert (call["text"], call["language"], call["stream_chunk_size"]) == ("Hallo Welt.", "de", 7)
    assert call["enable_text_splitting"] is False
    assert call["speaker_embedding"].shape == (1, 512, 1)
    assert call["gpt_cond_latent"].shape == (1, 32, 1024)
    assert np.array_equal(call["speaker_embedding"].reshape(512), custom.speaker_embedding)
    assert np.array_equal(call["gpt_cond_latent"][0], custom.gpt_cond_latent)


def test_xtts_engine_with_fake_model_names_studio_speakers_after_a_json_round_trip():
    engine, _ = _attached()
    sent = engine.voices()["Ana Florence"].to_json()
    voice = engine.resolve_voice(Latents.from_lists(**sent))
    assert isinstance(voice, Voice) and voice.name == "Ana Florence"


def test_xtts_engine_with_fake_model_uses_the_models_sentence_limits():
    engine, _ = _attached()
    assert engine.sentence_limit("en") == 250
    assert engine.sentence_limit("zh") == 82
    assert engine.sentence_limit("de") == 250  # not published: the English limit


def test_xtts_engine_with_fake_model_clones_from_the_uploaded_bytes():
    engine, model = _attached()
    latents = engine.clone(b"RIFF-fake-wav")
    assert model.cloned_from == b"RIFF-fake-wav"
    assert latents.speaker_embedding.shape == (512,) and latents.gpt_cond_latent.shape == (32, 1024)
    assert float(latents.speaker_embedding[0]) == 0.5
