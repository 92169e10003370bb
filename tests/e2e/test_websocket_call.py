"""End to end over the WebSocket transport, with Pipecat's own protobuf classes as the codec."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from scripts.caller import read_wav
from tests.support import FIXTURES, SocketCaller, rms, spoken, transcribe

pytestmark = pytest.mark.e2e

QUESTION = read_wav(FIXTURES / "questions" / "france.wav")


def ws_url(stack) -> str:
    return stack.bot_url.replace("http://", "ws://") + "/ws"


async def test_spoken_question_over_the_websocket(stack):
    async with SocketCaller.call(ws_url(stack), {"voice": "heart", "language": "en"}) as caller:
        greeting = await caller.greeting()
        assert caller.rate == 24000
        assert rms(greeting) > 0.01
        assert "harper" in transcribe(greeting, caller.rate)

        transcript, answer = await caller.ask(QUESTION)
        assert "france" in transcript.lower()
        assert len(transcribe(answer, caller.rate).split()) >= 2
        latency = [
            m["data"]
            for m in caller.of_type("server-message")
            if m["data"]["type"] == "latency" and m["data"]["kind"] == "turn"
        ]
        # Whisper's, the LLM's and TTS's stages may be 0: an answer begun at the caller's pause
        # can have its first audio ready before the turn ends.
        assert latency and latency[0]["total_ms"] > 0, latency
        assert all(latency[0]["stages_ms"][stage] >= 0 for stage in ("stt", "llm", "tts"))


async def test_a_voice_the_tts_server_lacks_is_refused_in_words(stack):
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"type": "start", "voice": "nobody"}))
        refusal = json.loads(await ws.recv())
        assert refusal == {
            "type": "error",
            "error": "voice: 'nobody' is not offered by the TTS server (it has: heart)",
        }
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1008

    async with httpx.AsyncClient() as client:
        voices = (await client.get(f"{stack.bot_url}/api/voices")).json()
    assert voices == {"voices": ["heart"], "languages": ["en"]}


async def test_over_the_websocket_a_backchannel_leaves_the_bot_talking_and_words_stop_it(stack):
    async with SocketCaller.call(ws_url(stack)) as caller:
        await caller.wait_for(lambda: caller.of_type("bot-started-speaking"), 60, "the greeting")
        await asyncio.sleep(1.0)
        caller.say(spoken("Okay."))
        await caller.wait_for(lambda: caller.of_type("bot-stopped-speaking"), 30, "its end")
        assert not caller.of_type("bot-interrupted"), "the okay stopped the bot"

        starts = len(caller.of_type("bot-started-speaking"))
        caller.say(QUESTION)
        await caller.wait_for(
            lambda: len(caller.of_type("bot-started-speaking")) > starts, 60, "the answer"
        )
        caller.say(spoken("Wait, stop. What do bees make?"))
        await caller.wait_for(lambda: caller.of_type("bot-interrupted"), 10, "the interruption")
