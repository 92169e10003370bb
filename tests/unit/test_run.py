"""`make run`'s launcher: when it falls back to the offline TTS engine, and when it stops."""

from __future__ import annotations

import pytest

from scripts import run
from xtts.__main__ import EXIT_UNAVAILABLE
from xtts.engines.base import ENGINES, EngineSpec


@pytest.fixture
def uninstalled_engine(monkeypatch) -> str:
    monkeypatch.setitem(ENGINES, "ghost", EngineSpec("tests:Nothing", "ghost", ("no_such_pkg",)))
    return "ghost"


def test_an_engine_whose_packages_are_missing_falls_back_before_starting(uninstalled_engine):
    reason = run.tts_fallback_reason(uninstalled_engine)
    assert reason is not None and "uv sync --extra ghost" in reason


def test_an_installed_engine_is_started(uninstalled_engine):
    assert run.tts_fallback_reason("piper") is None  # the piper extra is installed here
    assert run.tts_fallback_reason("not-an-engine") is None  # the server names the bad setting


@pytest.mark.parametrize(
    ("returncode", "falls_back"),
    [(EXIT_UNAVAILABLE, True), (2, False), (1, False), (-15, False)],
)
def test_only_exit_unavailable_falls_back_after_starting(returncode, falls_back):
    """2 is invalid settings, 1 a failed load (a voice the engine lacks): both stop the launcher."""
    assert (run.tts_fallback_reason("piper", returncode) is not None) is falls_back


def test_the_offline_engine_never_falls_back_to_itself():
    assert run.tts_fallback_reason(run.OFFLINE_TTS_ENGINE, EXIT_UNAVAILABLE) is None


def test_a_settings_failure_is_reported_as_one():
    assert str(run.ProcessExited("tts", 2)).endswith("its settings are invalid (see above)")
    assert str(run.ProcessExited("bot", 1)) == "bot exited with 1 while starting"
