"""The latency observer keeps a turn whose early answer was withdrawn (the final transcript
differed): Pipecat's own then reports the answer as measured from the call's start."""

from __future__ import annotations

import asyncio

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.observers.user_bot_latency_observer import (
    LatencyBreakdown,
    MeasuredFrom,
    UserBotLatencyObserver,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from bot.latency_observer import TurnLatencyObserver


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def turn_with_a_withdrawn_answer(observer: UserBotLatencyObserver, clock: Clock) -> None:
    """The caller speaks 1 s and falls silent at 101.0; an answer starts on the early
    transcript, is withdrawn for the final one (an interruption from the LLM service), and the
    second answer is heard at 101.7."""
    user, llm, out = FrameProcessor(name="user"), FrameProcessor(name="llm"), FrameProcessor()

    async def at(secs: float, frame: Frame, source: FrameProcessor = user) -> None:
        clock.now = secs
        await observer.on_push_frame(
            FramePushed(source, out, frame, FrameDirection.DOWNSTREAM, int(secs * 1e9))
        )

    await at(100.0, VADUserStartedSpeakingFrame(start_secs=0.2, timestamp=100.0))
    await at(100.0, UserStartedSpeakingFrame())
    await at(101.2, VADUserStoppedSpeakingFrame(stop_secs=0.2, timestamp=101.2))
    await at(101.25, TranscriptionFrame("Please tell my kids why", "caller", "now"))
    await at(101.26, LLMFullResponseStartFrame(), llm)
    await at(101.4, TranscriptionFrame("Please tell my kids why we recycle.", "caller", "now"))
    await at(101.4, UserStoppedSpeakingFrame())
    await at(101.41, InterruptionFrame(), llm)  # the early answer withdrawn
    await at(101.42, LLMFullResponseStartFrame(), llm)
    await at(101.55, LLMTextFrame("Because"), llm)
    await at(101.65, TTSAudioRawFrame(b"\0\0" * 160, 16000, 1))
    await at(101.7, BotStartedSpeakingFrame())
    for _ in range(3):  # the observer's event handlers run as tasks
        await asyncio.sleep(0)


async def measured(kind: type[UserBotLatencyObserver]) -> LatencyBreakdown:
    """The one breakdown an observer of `kind` reports for that turn."""
    clock = Clock()
    observer = kind(time_source=clock)
    seen: list[LatencyBreakdown] = []

    async def keep(_observer, breakdown: LatencyBreakdown) -> None:
        seen.append(breakdown)

    observer.add_event_handler("on_latency_breakdown", keep)
    await turn_with_a_withdrawn_answer(observer, clock)
    (breakdown,) = seen
    return breakdown


async def test_a_withdrawn_early_answer_leaves_the_turn_measured_from_the_callers_silence():
    breakdown = await measured(TurnLatencyObserver)
    assert breakdown.measured_from is MeasuredFrom.USER_SILENCE
    assert breakdown.user_turn_start_time == pytest.approx(101.0)
    assert breakdown.total_secs == pytest.approx(0.7, abs=0.01)
    keys = [c.key for c in breakdown.contributions]
    assert "endpointing_wait" in keys and "transcription" in keys, keys


async def test_pipecats_own_observer_loses_that_turn():
    """Why the kit's observer exists: if this fails, Pipecat has fixed it upstream."""
    breakdown = await measured(UserBotLatencyObserver)
    assert breakdown.measured_from is not MeasuredFrom.USER_SILENCE
    assert breakdown.user_turn_start_time is None
