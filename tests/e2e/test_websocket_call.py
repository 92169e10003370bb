"""End to end over the WebSocket transport, with Pipecat's own protobuf classes as the codec."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets
from pipecat.frames.protobufs import frames_pb2

from scripts.caller import read_wav
from tests.support import FIXTURES, rms, transcribe, wait_until

pytestmark = pytest.mark.e2e

QUESTION = read_wav(FIXTURES / "questions" / "france.wav")
FRAME_BYTES = 640  # 20 ms of 16 kHz s16le


class SocketCaller:
    """Streams the microphone at real-time pace and keeps what the bot sends back."""

    def __init__(self, ws):
        self.ws = ws
        self.messages: list[dict] = []
        self.audio: list[tuple[float, bytes]] = []
        self.rate = 0
        self._pending = b""

    def say(self, pcm: bytes) -> None:
        self._pending += pcm

    async def send_message(self, message: dict) -> None:
        frame = frames_pb2.Frame()
        frame.message.data = json.dumps(message)
        await self.ws.send(frame.SerializeToString())

    async def microphone(self) -> None:
        start, sent = time.monotonic(), 0
        while True:
            chunk, self._pending = self._pending[:FRAME_BYTES], self._pending[FRAME_BYTES:]
            frame = frames_pb2.Frame()
            frame.audio.audio = chunk.ljust(FRAME_BYTES, b"\0")
            frame.audio.sample_rate = 16000
            frame.audio.num_channels = 1
            await self.ws.send(frame.SerializeToString())
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * 0.02 - time.monotonic()))

    async def receive(self) -> None:
        async for data in self.ws:
            frame = frames_pb2.Frame.FromString(data)
            kind = frame.WhichOneof("frame")
            if kind == "audio":
                self.rate = frame.audio.sample_rate
                self.audio.append((time.monotonic(), frame.audio.audio))
            elif kind == "message":
                self.messages.append(json.loads(frame.message.data))

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m.get("type") == kind]

    async def wait_for(self, predicate, within: float, what: str):
        return await wait_until(predicate, within, what)


def ws_url(stack) -> str:
    return stack.bot_url.replace("http://", "ws://") + "/ws"


async def test_spoken_question_over_the_websocket(stack):
    async with websockets.connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"type": "start", "voice": "heart", "language": "en"}))
        caller = SocketCaller(ws)
        tasks = [asyncio.create_task(caller.receive()), asyncio.create_task(caller.microphone())]
        try:
            await caller.send_message(
                {
                    "label": "rtvi-ai",
                    "type": "client-ready",
                    "id": "1",
                    "data": {"version": "2.2.0"},
                }
            )
            await caller.wait_for(lambda: caller.of_type("bot-stopped-speaking"), 60, "greeting")
            greeting = b"".join(pcm for _, pcm in caller.audio)
            assert caller.rate == 24000
            assert rms(greeting) > 0.01
            assert "harper" in transcribe(greeting, caller.rate)

            asked = time.monotonic()
            caller.say(QUESTION)
            finals = await caller.wait_for(
                lambda: [m for m in caller.of_type("user-transcription") if m["data"]["final"]],
                60,
                "the question's transcript",
            )
            assert "france" in finals[-1]["data"]["text"].lower()
            await caller.wait_for(
                lambda: len(caller.of_type("bot-stopped-speaking")) > 1, 90, "the answer"
            )
            answer = b"".join(pcm for at, pcm in caller.audio if at > asked)
            assert len(transcribe(answer, caller.rate).split()) >= 2
            latency = [
                m["data"]
                for m in caller.of_type("server-message")
                if m["data"]["type"] == "latency" and m["data"]["kind"] == "turn"
            ]
            assert latency and latency[0]["stages_ms"]["stt"] > 0
        finally:
            for task in tasks:
                task.cancel()


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
