"""The bot's TTS client (`KitTTSService`) in a real Pipecat pipeline against the real TTS server
(hibari) as a process: answers arrive as LLM text does, and the server is stopped, resumed and
restarted between and inside them. Whisper judges what was said.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from pipecat.frames.frames import (
    DataFrame,
    ErrorFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.tests.utils import SleepFrame, run_test

from bot.tts import SERVER_RATE, KitTTSService
from tests.support import free_port, server_process, transcribe

pytestmark = pytest.mark.pipeline

FIRST = "Apples grow on tall green trees."
REST = ("Bananas are long and yellow.", "Cherries are small and red.")
SECOND = "Dogs like to run in the park."


@dataclass
class Server:
    """The TTS server process on a fixed port, which the test may stop, resume or replace."""

    port: int
    env: dict[str, str] = field(default_factory=dict)
    procs: list = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            "TTS_ENGINE": "hibari",
            "TTS_PORT": str(self.port),
            "TTS_HOST": "127.0.0.1",
            **self.env,
        }
        name = f"tts-client-{len(self.procs)}"
        proc = self.stack.enter_context(
            server_process(["-m", "xtts"], env=env, ready_url=f"{self.url}/ready", name=name)
        )
        # Never leave a stopped server behind, whatever the test did to it.
        self.stack.callback(lambda: proc.poll() is None and os.kill(proc.pid, signal.SIGCONT))
        self.procs.append(proc)

    def replace(self) -> None:
        """Stop the server and start a new one on the same port (a restart, as Docker does)."""
        self.procs[-1].terminate()
        self.procs[-1].wait(10)
        self.start()


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server(free_port())
    with server.stack:
        server.start()
        yield server


@dataclass
class Act(DataFrame):
    """Something done to the server when this frame reaches the TTS, in order with the text."""

    action: object = None


class Actor(FrameProcessor):
    async def process_frame(self, frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, Act):
            await asyncio.to_thread(frame.action)
        else:
            await self.push_frame(frame, direction)


def answer(*sentences: str) -> list:
    """An LLM response streamed a few words at a time, as llama.cpp streams it."""
    frames: list = [LLMFullResponseStartFrame()]
    for sentence in sentences:
        for word in sentence.split():
            frames.append(LLMTextFrame(f"{word} "))
    return [*frames, LLMFullResponseEndFrame()]


async def speak(
    server: Server, frames: list, url: str | None = None, timeout_secs: float = 1.0
) -> tuple[dict[str, bytes], list[ErrorFrame]]:
    """Run the frames through Actor → KitTTSService (talking to `url`, the server's unless
    given): the audio per answer, and the errors."""
    async with aiohttp.ClientSession() as session:
        tts = KitTTSService(
            base_url=url or server.url,
            voice="",
            language="en",
            session=session,
            timeout_secs=timeout_secs,
        )
        down, up = await run_test(Pipeline([Actor(), tts]), frames_to_send=frames)
    audio: dict[str, bytes] = {}
    for frame in down:
        if isinstance(frame, TTSAudioRawFrame):
            assert frame.sample_rate == SERVER_RATE
            assert len(frame.audio) % 2 == 0, "a frame split a 16-bit sample"
            audio[frame.context_id] = audio.get(frame.context_id, b"") + frame.audio
    return audio, [f for f in [*down, *up] if isinstance(f, ErrorFrame)]


@contextlib.asynccontextmanager
async def odd_chunking_proxy(target: str):
    """A pass-through in front of the real server that records each `/tts_stream` request's body
    and hands the audio on in odd-sized pieces (1, 3, 501, 1023, 2047 bytes), as a slow network
    might."""
    requests: list[bytes] = []
    streamed: list[bytes] = []

    async def studio_speakers(_request: web.Request) -> web.Response:
        async with session.get(f"{target}/studio_speakers") as upstream:
            return web.Response(body=await upstream.read(), content_type="application/json")

    async def tts_stream(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        requests.append(body)
        headers = {"Content-Type": "application/json"}
        async with session.post(f"{target}/tts_stream", data=body, headers=headers) as upstream:
            audio = await upstream.read()
        streamed.append(audio)
        response = web.StreamResponse(headers={"Content-Type": "audio/raw"})
        await response.prepare(request)
        offset, sizes = 0, itertools.cycle((1, 3, 501, 1023, 2047))
        while offset < len(audio):
            size = next(sizes)
            await response.write(audio[offset : offset + size])
            offset += size
            await asyncio.sleep(0.002)  # paced, so that pieces arrive one by one
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/studio_speakers", studio_speakers)
    app.router.add_post("/tts_stream", tts_stream)
    runner = web.AppRunner(app)
    async with aiohttp.ClientSession() as session:
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield f"http://127.0.0.1:{port}", requests, streamed
        finally:
            await runner.cleanup()


def heard(audio: dict[str, bytes]) -> list[str]:
    """What Whisper hears in each answer, in the order the answers were spoken."""
    return [transcribe(pcm, SERVER_RATE) for pcm in audio.values()]


async def test_each_answer_is_spoken_whole_with_its_punctuation(server: Server):
    audio, errors = await speak(server, [*answer(FIRST, *REST), SleepFrame(4)])
    assert not errors
    (said,) = heard(audio)
    for word in ("apples", "bananas", "cherries"):
        assert word in said, said


async def test_the_text_cutter_learns_the_voices_pace_from_the_server(server: Server):
    """The cutter times later pieces of a slow model's answer by the voice's pace and the
    server's lead (bot/text.py): both come from what the real server sent."""
    async with aiohttp.ClientSession() as session:
        tts = KitTTSService(base_url=server.url, voice="", language="en", session=session)
        assumed = tts._cutter.pace
        sentences = (FIRST, *REST, SECOND)
        down, _ = await run_test(
            Pipeline([tts]), frames_to_send=[*answer(*sentences), SleepFrame(4)]
        )
    pcm = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    actual = sum(len(s.split()) for s in sentences) / (len(pcm) / 2 / SERVER_RATE)
    words_per_sec, lead = tts._cutter.pace
    assert abs(words_per_sec - actual) < abs(assumed[0] - actual), (assumed, words_per_sec, actual)
    assert lead != assumed[1] and 0 < lead < 2


async def test_requests_follow_the_contract_byte_for_byte_and_odd_pieces_are_reassembled(
    server: Server,
):
    """What the client sends is exactly the XTTS streaming request (latents as the server gave
    them, raw PCM, chunk size 20); audio arriving in odd-sized pieces comes out as whole samples,
    every byte of it, in order."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/studio_speakers") as response,
    ):
        latents = next(iter((await response.json()).values()))
    async with odd_chunking_proxy(server.url) as (url, requests, streamed):
        audio, errors = await speak(server, [*answer(SECOND), SleepFrame(3)], url=url)
    assert not errors, errors
    # The first clause goes on its own, for an early start (bot/text.py); then the rest.
    pieces = ["Dogs like to run", "in the park."]
    assert requests == [
        json.dumps(
            {
                "text": piece,
                "language": "en",
                "speaker_embedding": latents["speaker_embedding"],
                "gpt_cond_latent": latents["gpt_cond_latent"],
                "add_wav_header": False,
                "stream_chunk_size": 20,
            }
        ).encode()
        for piece in pieces
    ]
    (spoken,) = audio.values()
    assert spoken == b"".join(streamed) and len(spoken) > SERVER_RATE  # over half a second
    said = transcribe(spoken, SERVER_RATE)
    assert "dogs" in said and "park" in said, said


async def test_a_refused_piece_is_reported_and_the_rest_of_the_answer_is_spoken():
    """A sentence over the server's TTS_MAX_TEXT_CHARS is refused (413): the page is told why,
    in the server's words, and the answer goes on with its next sentence."""
    long = "The quick brown fox jumps over the lazy dog near the river bank."
    server = Server(free_port(), env={"TTS_MAX_TEXT_CHARS": "40"})
    with server.stack:
        server.start()
        audio, errors = await speak(server, [*answer(FIRST, long, SECOND), SleepFrame(4)])
    assert len(errors) == 1, errors
    assert "refused the text (413)" in errors[0].error and "TTS_MAX_TEXT_CHARS" in errors[0].error
    (said,) = heard(audio)
    assert "apples" in said and "dogs" in said, said
    assert "fox" not in said, said


async def test_a_server_that_stops_mid_answer_ends_that_answer_and_the_next_is_spoken(
    server: Server,
):
    """SIGSTOP: the server accepts connections and answers nothing. The sentence under way fails
    within the deadline (one error), the rest of that answer is never spoken, even once the
    server resumes; the next answer is."""
    stop = Act(action=lambda: os.kill(server.procs[-1].pid, signal.SIGSTOP))
    resume = Act(action=lambda: os.kill(server.procs[-1].pid, signal.SIGCONT))
    first = answer(FIRST, *REST)
    frames = [
        *first[: 1 + len(FIRST.split()) + 1],  # the first sentence and the word that ends it
        SleepFrame(4),  # spoken by now
        stop,
        *first[1 + len(FIRST.split()) + 1 :],
        SleepFrame(3),
        resume,
        *answer(SECOND),
        SleepFrame(4),
    ]
    audio, errors = await speak(server, frames)
    assert len(errors) == 1, errors
    assert "sent nothing for 1 s" in errors[0].error
    before, after = heard(audio)
    assert "apples" in before, before
    assert "bananas" not in before and "cherries" not in before, before
    assert "dogs" in after, after


async def test_an_answer_quiet_before_the_deadline_is_reported_in_words_and_never_heard_late(
    server: Server,
):
    """A deadline (TTS_TIMEOUT_SECS) longer than the 3 s after which Pipecat ends a quiet
    answer: the page gets one error in words (not Pipecat's "TTS context <id> completed with no
    audio"), the stalled sentence is not spoken when the server resumes, nor is the rest of that
    answer; the next answer is."""
    stop = Act(action=lambda: os.kill(server.procs[-1].pid, signal.SIGSTOP))
    resume = Act(action=lambda: os.kill(server.procs[-1].pid, signal.SIGCONT))
    first = answer(FIRST, *REST)
    cut = 1 + len(FIRST.split()) + 1  # the first sentence and the word that ends it
    frames = [
        *first[:cut],
        SleepFrame(4),
        stop,
        *first[cut:],
        SleepFrame(4.5),  # past Pipecat's 3 s, within the 8 s deadline
        resume,
        SleepFrame(3),  # the stalled request's reply arrives now
        *answer(SECOND),
        SleepFrame(4),
    ]
    audio, errors = await speak(server, frames, timeout_secs=8.0)
    assert len(errors) == 1, errors
    assert errors[0].error == f"TTS server at {server.url} sent nothing for 3 s", errors[0]
    said = heard(audio)
    assert "apples" in said[0] and "dogs" in said[-1], said
    assert not any("bananas" in s or "cherries" in s for s in said), said


async def test_a_restarted_server_is_spoken_through_without_an_error(server: Server):
    """The connection to the old process is gone; the next answer reaches the new one, with the
    voice's latents as the client fetched them from the old one."""
    frames = [*answer(FIRST), SleepFrame(3), Act(action=server.replace), *answer(SECOND)]
    audio, errors = await speak(server, [*frames, SleepFrame(4)])
    assert not errors, errors
    before, after = heard(audio)
    assert "apples" in before, before
    assert "dogs" in after, after


async def test_an_unknown_voice_is_named_with_the_voices_offered(server: Server):
    async with aiohttp.ClientSession() as session:
        tts = KitTTSService(base_url=server.url, voice="nobody", language="en", session=session)
        down, up = await run_test(tts, frames_to_send=[*answer(SECOND), SleepFrame(2)])
    errors = [f for f in [*down, *up] if isinstance(f, ErrorFrame)]
    assert errors, "no error for an unknown voice"
    assert "'nobody' is not offered" in errors[0].error and "heart" in errors[0].error
    assert not [f for f in down if isinstance(f, TTSAudioRawFrame)]
