"""Silero is not asked about a line that has been silent for a second, and the VAD decides
exactly as it would have: real Silero on recorded questions between stretches of digital silence
(a muted microphone, a browser's noise suppression, a phone line's quiet)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import bot.turns
from bot.config import Settings
from bot.turns import call_vad
from scripts.caller import read_wav
from tests.support import FIXTURES

RATE = 16000
FRAME = RATE // 50  # 20 ms, as a transport hands the VAD


def line() -> bytes:
    """Two questions, the second after a pause of noise-free silence, as a caller's line."""
    silence = np.zeros(RATE * 2, "<i2").tobytes()
    france, sky = (read_wav(FIXTURES / "questions" / f"{q}.wav") for q in ("france", "sky"))
    return silence + france + silence + sky + silence


def hear(pcm: bytes) -> tuple[list[tuple[str, bool, float]], int]:
    """The VAD's state, whether it is stirring and its confidence after every 20 ms frame, and
    how often Silero ran."""
    vad = call_vad(Settings(), stop_secs=0.2)
    vad.set_sample_rate(RATE)
    model, runs = vad._model, [0]

    def counted(*args):
        runs[0] += 1
        return model(*args)

    vad._model = counted  # type: ignore[assignment]
    vad._model.reset_states = model.reset_states  # type: ignore[attr-defined]

    async def feed():
        heard = []
        for i in range(0, len(pcm) - 2 * FRAME + 1, 2 * FRAME):
            state = await vad.analyze_audio(pcm[i : i + 2 * FRAME])
            heard.append((state.name, vad.stirring, round(vad._confidence, 6)))
        await vad.cleanup()
        return heard

    return asyncio.run(feed()), runs[0]


def test_after_a_second_of_silence_silero_rests_and_nothing_the_vad_decides_changes(monkeypatch):
    pcm = line()
    skipping, runs = hear(pcm)
    monkeypatch.setattr(bot.turns, "SILENT_WINDOWS", 10**9)  # Silero asked about every window
    always, every_window = hear(pcm)
    assert [h[:2] for h in skipping] == [h[:2] for h in always]
    # Where Silero rested, its settled answer stood for what it would have said, far below the
    # 0.3 from which anything is decided.
    assert max(abs(a[2] - b[2]) for a, b in zip(skipping, always, strict=True)) < 0.05
    assert every_window == len(pcm) // 2 // 512
    # Three stretches of two seconds, less the second each takes to be trusted.
    assert every_window - runs >= 3 * (62 - 32) - 3


@pytest.mark.parametrize("level", [17, 300])
def test_a_line_with_any_sound_on_it_is_always_heard(monkeypatch, level):
    """Faint hiss (a peak just above silence) or room noise: every window goes to Silero."""
    rng = np.random.default_rng(0)
    noise = np.clip(rng.normal(0, level / 3, RATE * 3), -level, level).astype("<i2")
    noise[::97] = level  # its peak, whatever the draw
    _, runs = hear(noise.tobytes())
    assert runs == RATE * 3 // 512
