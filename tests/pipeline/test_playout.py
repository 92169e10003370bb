"""Playout across an interruption: Pipecat's real output transport (its media sender, queue and
speaking state) in a pipeline, writing to a line that records what it was given.

The caller talks over the greeting. Whatever audio was already on its way out when the
interruption landed must not be played after it, nor make the bot "start speaking" again: the
turn's latency is measured from the next time it does.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from bot.playout import drop_stale_audio

pytestmark = pytest.mark.pipeline

RATE = 16000
CHUNK_SECS = 0.04  # the transport's default chunk: four 10 ms pieces


class Line(BaseOutputTransport):
    """An output transport whose peer takes each chunk in real time and keeps it."""

    def __init__(self, params: TransportParams) -> None:
        super().__init__(params)
        self.written: list[tuple[OutputAudioRawFrame, float]] = []
        self.interrupted_at: float | None = None

    async def process_frame(self, frame, direction) -> None:
        if isinstance(frame, InterruptionFrame):
            self.interrupted_at = asyncio.get_running_loop().time()
        await super().process_frame(frame, direction)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        self.written.append((frame, asyncio.get_running_loop().time()))
        await asyncio.sleep(CHUNK_SECS)
        return True


class SlowChunk(BaseAudioFilter):
    """An output filter that holds the third chunk for a while: a busy event loop's delay
    between taking a chunk from the queue and playing it, made long enough to land in."""

    def __init__(self, hold_secs: float) -> None:
        self.hold_secs = hold_secs
        self.seen = 0

    async def start(self, sample_rate: int) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def process_frame(self, frame) -> None:
        pass

    async def filter(self, audio: bytes) -> bytes:
        self.seen += 1
        if self.seen == 3:
            await asyncio.sleep(self.hold_secs)
        return audio


def tone(secs: float) -> bytes:
    t = np.arange(int(secs * RATE)) / RATE
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16).tobytes()


async def test_audio_taken_out_before_an_interruption_is_not_played_after_it():
    drop_stale_audio()
    line = Line(
        TransportParams(
            audio_out_enabled=True,
            audio_out_sample_rate=RATE,
            audio_out_filter=SlowChunk(0.6),
            audio_out_end_silence_secs=0,  # nothing is written after the interruption
        )
    )
    down, _ = await run_test(
        line,
        frames_to_send=[
            TTSAudioRawFrame(tone(2.0), RATE, 1),  # the greeting
            SleepFrame(0.3),  # the third chunk is held from about 0.08 s to 0.68 s
            InterruptionFrame(),
            SleepFrame(1.0),
        ],
        pipeline_params=PipelineParams(audio_out_sample_rate=RATE),
    )

    speaking = [f for f in down if isinstance(f, BotStartedSpeakingFrame | BotStoppedSpeakingFrame)]
    assert [type(f) for f in speaking] == [BotStartedSpeakingFrame, BotStoppedSpeakingFrame]
    assert line.interrupted_at is not None, "the interruption never reached the transport"
    after = [frame for frame, at in line.written if at > line.interrupted_at]
    assert not after, f"{len(after)} chunk(s) of the greeting played after the interruption"
    assert 1 <= len(line.written) <= 3  # it did play until the interruption
