"""`HeldSpeech` in a real Pipecat pipeline, fed the frames TTS sends on: an answer that starts
while the caller's turn is open is held until the turn is confirmed, and dropped unheard when it
is withdrawn; the greeting and answers to confirmed turns pass at once."""

from __future__ import annotations

import pytest
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.tests.utils import SleepFrame, run_test

from bot.speculation import HeldSpeech, SpeakingGate

pytestmark = pytest.mark.pipeline


def audio(mark: int) -> TTSAudioRawFrame:
    """20 ms of audio whose bytes say which it is."""
    return TTSAudioRawFrame(audio=bytes([mark]) * 960, sample_rate=24000, num_channels=1)


def heard(frames) -> list[int]:
    return [f.audio[0] for f in frames if isinstance(f, TTSAudioRawFrame)]


async def test_an_answer_to_an_open_turn_is_held_until_the_turn_is_confirmed():
    frames = [
        *(TTSStartedFrame(), audio(1), TTSStoppedFrame(), SleepFrame(0.05)),  # the greeting
        *(UserStartedSpeakingFrame(), SleepFrame(0.05)),
        *(LLMFullResponseStartFrame(), audio(2), audio(3), SleepFrame(0.1)),
        *(UserStoppedSpeakingFrame(), SleepFrame(0.05), LLMFullResponseEndFrame()),
    ]
    down, _ = await run_test(HeldSpeech(), frames_to_send=frames)
    assert heard(down) == [1, 2, 3]
    stopped = next(i for i, f in enumerate(down) if isinstance(f, UserStoppedSpeakingFrame))
    first = next(
        i for i, f in enumerate(down) if isinstance(f, TTSAudioRawFrame) and f.audio[0] == 2
    )
    assert first > stopped, "held until the turn was confirmed, then played in order"


async def test_a_withdrawn_answer_is_never_played_and_the_next_one_is():
    frames = [
        *(UserStartedSpeakingFrame(), SleepFrame(0.05)),
        *(LLMFullResponseStartFrame(), audio(4), audio(5), SleepFrame(0.05)),
        # The caller went on: the turn strategy withdraws, the LLM interrupts what followed it.
        *(EagerEndOfTurnCancelFrame(), InterruptionFrame(), SleepFrame(0.05)),
        *(UserStoppedSpeakingFrame(), SleepFrame(0.05)),
        *(LLMFullResponseStartFrame(), audio(6), LLMFullResponseEndFrame(), SleepFrame(0.05)),
    ]
    down, _ = await run_test(HeldSpeech(), frames_to_send=frames)
    assert heard(down) == [6]


def test_the_llms_gate_lets_an_unconfirmed_answer_through_but_knows_it_is_one():
    """So that a withdrawal still stops the LLM (Pipecat asks `is_speculating`)."""
    from pipecat.processors.frame_processor import FrameDirection

    gate = SpeakingGate()
    gate.begin_speculation(True)
    start = LLMFullResponseStartFrame()
    assert gate.process(start, FrameDirection.DOWNSTREAM) == [(start, FrameDirection.DOWNSTREAM)]
    assert gate.is_speculating
    gate.process(UserStoppedSpeakingFrame(), FrameDirection.DOWNSTREAM)
    assert not gate.is_speculating, "confirmed"
