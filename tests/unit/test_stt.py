"""Trimmed-window Whisper decoding agrees with faster-whisper's full window (real tiny.en)."""

import functools
import wave

import numpy as np
import pytest

from bot.stt import TurnDecoder
from tests.support import FIXTURES, whisper, words

QUESTIONS = sorted((FIXTURES / "questions").glob("*.wav"))


@functools.cache
def turn(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    return audio[6000:-12000]  # roughly what VAD hands on: the speech, a little either side


def text_of(segments) -> str:
    return " ".join(s.text for s in segments)


@pytest.mark.parametrize("path", QUESTIONS, ids=lambda p: p.stem)
def test_trimmed_transcript_matches_the_full_window(path):
    trimmed, _ = TurnDecoder(whisper()).transcribe(turn(path), language="en")
    full, _ = TurnDecoder(whisper(), trim_window=False).transcribe(turn(path), language="en")
    assert words(text_of(trimmed)) == words(text_of(full))
    assert len(trimmed) == 1 and trimmed[0].no_speech_prob < 0.4


def test_trimmed_decoding_does_not_repeat_itself():
    # Without the repetition penalty these came back as the question said three times over.
    for path in QUESTIONS:
        (segment,), _ = TurnDecoder(whisper()).transcribe(turn(path), language="en")
        said = words(segment.text).split()
        assert len(said) <= 10, segment.text


def test_hotwords_long_clips_and_no_language_take_the_stock_path():
    decoder = TurnDecoder(whisper())
    audio = turn(QUESTIONS[0])
    for kwargs in ({"language": "en", "hotwords": "Harper"}, {"language": None}):
        segments, info = decoder.transcribe(audio, **kwargs)
        assert info is not None  # faster-whisper's own TranscriptionInfo
        assert "capital" in words(text_of(segments))
    long_clip = np.concatenate([audio] * 15)  # about 32 s: over the trimmed limit
    segments, info = decoder.transcribe(long_clip, language="en")
    assert info is not None
