"""The benchmark's caller dates the end of its words where the recording says they end."""

from __future__ import annotations

import time

import numpy as np

from scripts.caller import FRAME_SAMPLES, MIC_RATE, SILENCE_LEVEL, Microphone
from scripts.speech import _noise


def question_in_noise() -> tuple[bytes, int]:
    """Half a second of a tone, then half a second of room noise louder than the silence level:
    (the recording, where its words end)."""
    t = np.arange(MIC_RATE // 2) / MIC_RATE
    words = 8000 * np.sin(2 * np.pi * 220 * t)
    tail = 4 * SILENCE_LEVEL * _noise(MIC_RATE // 2, seed=3)
    pcm = np.clip(np.concatenate([words, tail]), -32768, 32767).astype("<i2")
    return pcm.tobytes(), len(words) - 1


async def test_the_end_of_the_words_is_taken_from_the_recording_not_a_level():
    mic = Microphone()
    before = time.monotonic()
    await mic.recv()  # the microphone starts: one frame of silence is out
    after = time.monotonic()
    pcm, end = question_in_noise()
    mic.say(pcm, speech_end=end)
    due = (FRAME_SAMPLES + end) / MIC_RATE
    assert before + due <= mic.speech_end() <= after + due
    words_end = mic.speech_end() + len(pcm) / 2 / MIC_RATE  # the same words, queued after
    mic.say(pcm)  # dated by level instead
    assert mic.speech_end() - words_end > 0.4, "by level, the noise after the words is speech"
