"""Playout: Pipecat's real output transport (its media sender, queue and speaking state) in a
pipeline, writing to a line that records what it was given in real time, behind the kit's
`Playout`.

- The caller talks over the greeting. Whatever audio was already on its way out when the
  interruption landed must not be played after it, nor make the bot "start speaking" again: the
  turn's latency is measured from the next time it does.
- A paused answer goes on from the sample it stopped at, the bot keeping the floor meanwhile.
- An answer cut off in its second sentence is known to have been heard up to there, and the
  conversation keeps only that, marked as cut off.
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
    LLMFullResponseStartFrame,
    OutputAudioRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.tests.utils import SleepFrame, run_test
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from bot.pipeline import audio_params
from bot.playout import CUT_NOTE, Playout, drop_stale_audio, heard_only

pytestmark = pytest.mark.pipeline

RATE = 16000
CHUNK_SECS = audio_params()["audio_out_10ms_chunks"] / 100  # the kit's output chunk


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


def counting(secs: float, start: int = 1) -> bytes:
    """Audio whose every sample says where it is (never 0: silence is told apart)."""
    return (np.arange(int(secs * RATE)) % 30000 + start).astype(np.int16).tobytes()


def line() -> Line:
    return Line(
        TransportParams(
            audio_out_enabled=True,
            audio_out_sample_rate=RATE,
            audio_out_end_silence_secs=0,
            audio_out_10ms_chunks=audio_params()["audio_out_10ms_chunks"],
        )
    )


def samples(line: Line) -> np.ndarray:
    return np.frombuffer(b"".join(f.audio for f, _ in line.written), dtype=np.int16)


async def test_a_paused_answer_goes_on_from_the_sample_it_stopped_at():
    drop_stale_audio()
    playout, out = Playout(), line()
    loop = asyncio.get_running_loop()
    loop.call_later(0.5, playout.pause)
    loop.call_later(1.1, playout.resume)
    answer = counting(1.5)
    down, _ = await run_test(
        Pipeline([playout, out]),
        frames_to_send=[TTSAudioRawFrame(answer, RATE, 1), TTSStoppedFrame(), SleepFrame(2.6)],
        pipeline_params=PipelineParams(audio_out_sample_rate=RATE),
    )

    played = samples(out)
    assert played[played != 0].tobytes() == answer, "every sample once, in order"
    silent = np.flatnonzero(played == 0) / RATE  # when, in the played audio
    assert 0.4 <= len(silent) / RATE <= 0.8, "silence for about as long as it was paused"
    assert silent[0] > 0.3 and silent[-1] < 1.5, "mid-answer"
    speaking = [f for f in down if isinstance(f, BotStartedSpeakingFrame | BotStoppedSpeakingFrame)]
    assert [type(f) for f in speaking] == [BotStartedSpeakingFrame, BotStoppedSpeakingFrame], (
        "the bot keeps the floor while paused"
    )


async def test_an_answer_cut_off_while_paused_stays_silent():
    """The silence sent while paused is the bot's: once cut off it stops, or the bot would
    "start speaking" again and take the caller's next words for talk over it."""
    drop_stale_audio()
    playout, out = Playout(), line()
    asyncio.get_running_loop().call_later(0.4, playout.pause)
    down, _ = await run_test(
        Pipeline([playout, out]),
        frames_to_send=[
            TTSAudioRawFrame(counting(2.0), RATE, 1),
            SleepFrame(0.8),
            InterruptionFrame(),
            SleepFrame(0.6),
        ],
        pipeline_params=PipelineParams(audio_out_sample_rate=RATE),
    )
    assert out.interrupted_at is not None
    late = [f for f, at in out.written if at > out.interrupted_at + CHUNK_SECS]
    assert not late, f"{len(late)} chunks written after the interruption"
    speaking = [f for f in down if isinstance(f, BotStartedSpeakingFrame | BotStoppedSpeakingFrame)]
    assert [type(f) for f in speaking] == [BotStartedSpeakingFrame, BotStoppedSpeakingFrame]


async def test_a_pause_nobody_ends_ends_by_itself():
    drop_stale_audio()
    playout, out = Playout(longest_pause_secs=0.5), line()
    asyncio.get_running_loop().call_later(0.3, playout.pause)
    answer = counting(1.0)
    await run_test(
        Pipeline([playout, out]),
        frames_to_send=[TTSAudioRawFrame(answer, RATE, 1), TTSStoppedFrame(), SleepFrame(2.0)],
        pipeline_params=PipelineParams(audio_out_sample_rate=RATE),
    )
    played = samples(out)
    assert played[played != 0].tobytes() == answer, "the whole answer, after the pause"
    assert 0.4 <= np.count_nonzero(played == 0) / RATE <= 0.7


async def test_an_answer_cut_off_in_its_second_sentence_is_heard_up_to_there():
    drop_stale_audio()
    playout, out = Playout(), line()
    first, second = "The sun is a star.", "It is very big and very hot, and it keeps us all warm."
    down, _ = await run_test(
        Pipeline([playout, out]),
        frames_to_send=[
            LLMFullResponseStartFrame(),
            *(TTSAudioRawFrame(counting(1.0), RATE, 1), TTSTextFrame(first, "sentence")),
            *(TTSAudioRawFrame(counting(2.0), RATE, 1), TTSTextFrame(second, "sentence")),
            SleepFrame(2.0),  # a second into the second sentence: about half of it
            InterruptionFrame(),
            SleepFrame(0.5),
        ],
        pipeline_params=PipelineParams(audio_out_sample_rate=RATE),
    )

    heard = playout.heard or ""
    assert heard.startswith(f"{first} It is very"), heard
    assert len(heard.split()) < len(f"{first} {second}".split()) - 3, heard
    texts = [f.text for f in down if isinstance(f, TTSTextFrame)]
    assert texts == [first], "the second sentence's text never reached the conversation"
    assert len(samples(out)) < 2.4 * RATE, "nothing played past the interruption"


async def test_the_conversation_keeps_only_what_was_heard_of_a_cut_answer():
    """The call's own wiring: Pipecat's assistant aggregator after the transport, its answer
    amended by the playout when it stops."""
    drop_stale_audio()
    context = LLMContext([{"role": "user", "content": "Tell me about the sun."}])
    assistant = LLMContextAggregatorPair(context).assistant()
    playout, out = Playout(), line()

    @assistant.event_handler("on_assistant_turn_stopped")
    async def stopped(_aggregator, message):
        playout.keep_heard(context, message)

    first, second = "The sun is a star.", "It is very big and very hot, and it keeps us all warm."
    await run_test(
        Pipeline([playout, out, assistant]),
        frames_to_send=[
            LLMFullResponseStartFrame(),
            *(TTSAudioRawFrame(counting(1.0), RATE, 1), TTSTextFrame(first, "sentence")),
            *(TTSAudioRawFrame(counting(2.0), RATE, 1), TTSTextFrame(second, "sentence")),
            SleepFrame(2.0),
            InterruptionFrame(),
            SleepFrame(0.5),
        ],
        pipeline_params=PipelineParams(audio_out_sample_rate=RATE),
    )

    *_, answer, note = context.get_messages()
    assert isinstance(answer, dict) and answer["role"] == "assistant", context.get_messages()
    content = str(answer["content"])
    assert content.startswith(f"{first} It is very"), content
    assert content.endswith(" —") and "warm" not in content, content
    assert note == {"role": "system", "content": CUT_NOTE}


def test_an_answer_of_which_nothing_was_heard_leaves_the_conversation():
    context = LLMContext([{"role": "user", "content": "Tell me a story."}])
    context.add_message({"role": "assistant", "content": "Once upon a time."})
    heard_only(context, "Once upon a time.", "")
    assert context.get_messages() == [{"role": "user", "content": "Tell me a story."}]
