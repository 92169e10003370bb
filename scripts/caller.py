"""Real callers: WAV files as the microphone, the bot's audio and RTVI messages recorded.

`Caller` speaks WebRTC (aiortc) exactly as the browser page does: an audio transceiver, a `chat`
data channel carrying RTVI messages, and the SDP offer POSTed to `/api/offer`. `SocketCaller`
speaks the page's fallback, Pipecat's protobuf frames on `/ws`. The end-to-end tests and the
benchmarks call the bot through them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
import wave
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import websockets
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from pipecat.frames.protobufs import frames_pb2

MIC_RATE = 16000
FRAME_SAMPLES = MIC_RATE // 50  # 20 ms
SILENCE_LEVEL = 300  # s16 amplitude under which a sample counts as silence (about -40 dBFS)


def read_wav(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (MIC_RATE, 1, 2), path
        return w.readframes(w.getnframes())


class Microphone(MediaStreamTrack):
    """20 ms frames at real-time pace: queued speech when there is some, silence otherwise."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pending = b""
        self._start: float | None = None
        self._sent = 0
        self._first_speech_sample = self._last_speech_sample = 0
        self._live = asyncio.Event()
        self._live.set()
        self._room: np.ndarray | None = None  # noise under everything sent, looped

    def hiss(self, level_db: float) -> None:
        """Steady room noise, `level_db` dBFS (RMS), under everything sent from now on: a line
        that is never silent, as a microphone without noise suppression gives."""
        rng = np.random.default_rng(0)
        self._room = rng.normal(0, 10 ** (level_db / 20) * 32768, MIC_RATE * 2).astype(np.int32)

    def pause(self) -> None:
        """Send nothing at all (not even silence) until `resume`: an idle second call then costs
        the machine nothing while the benchmark measures the first."""
        self._live.clear()

    def resume(self) -> None:
        if not self._live.is_set() and self._start is not None:
            # Real-time pace from now on, rather than a burst catching up on the pause.
            self._start = time.monotonic() - self._sent / MIC_RATE
        self._live.set()

    def say(self, pcm: bytes, speech_end: int | None = None) -> None:
        """Queue speech; it goes out after what is already queued, at real-time pace. The words
        end at sample `speech_end` when the recording says so (in room noise no level tells),
        else at its last loud sample."""
        loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2")) > SILENCE_LEVEL)
        if speech_end is None:
            speech_end = int(loud[-1]) if loud.size else 0
        queued = self._sent + len(self._pending) // 2
        self._first_speech_sample = queued + (int(loud[0]) if loud.size else 0)
        self._last_speech_sample = queued + speech_end
        self._pending += pcm

    def speech_start(self) -> float:
        """When (time.monotonic) the first loud sample of the last utterance is due out."""
        assert self._start is not None, "the microphone has not started"
        return self._start + self._first_speech_sample / MIC_RATE

    def speech_end(self) -> float:
        """When (time.monotonic) the last loud sample of the last utterance is due out."""
        assert self._start is not None, "the microphone has not started"
        return self._start + self._last_speech_sample / MIC_RATE

    async def recv(self) -> av.AudioFrame:
        await self._live.wait()
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._sent / MIC_RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        size = FRAME_SAMPLES * 2
        chunk, self._pending = self._pending[:size], self._pending[size:]
        chunk = chunk.ljust(size, b"\0")
        if self._room is not None:
            at = self._sent % (len(self._room) - FRAME_SAMPLES)
            mixed = np.frombuffer(chunk, "<i2") + self._room[at : at + FRAME_SAMPLES]
            chunk = np.clip(mixed, -32768, 32767).astype("<i2").tobytes()
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(chunk)
        frame.sample_rate = MIC_RATE
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, MIC_RATE)
        self._sent += FRAME_SAMPLES
        return frame


CLIENT_READY = {"label": "rtvi-ai", "type": "client-ready", "data": {"version": "2.2.0"}}


class Session:
    """What a caller keeps of a call, whatever the transport: the bot's RTVI messages and its
    audio, each with its arrival time."""

    def __init__(self) -> None:
        self.mic = Microphone()
        self.messages: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # when each of `messages` came (time.monotonic)
        self.audio: list[tuple[float, bytes]] = []  # (arrival time, mono s16le)
        self._new_message = asyncio.Event()

    def _received(self, message: dict[str, Any]) -> None:
        if message.get("label") == "rtvi-ai":
            self.messages.append(message)
            self.arrivals.append(time.monotonic())
            self._new_message.set()

    def audio_between(self, start: float, end: float = float("inf")) -> bytes:
        return b"".join(pcm for at, pcm in self.audio if start <= at < end)

    def first_sound_after(self, start: float) -> float | None:
        """Arrival time of the first audible frame from the bot after `start`."""
        return next(self.sounds_after(start), None)

    def last_sound_after(self, start: float) -> float | None:
        """Arrival time of the last audible frame from the bot after `start`."""
        return next(self._sounds_after(start, reversed(self.audio)), None)

    def sounds_after(self, start: float) -> Iterator[float]:
        """Arrival times of the bot's audible frames after `start`, in order."""
        return self._sounds_after(start, self.audio)

    @staticmethod
    def _sounds_after(start: float, frames: Iterable[tuple[float, bytes]]) -> Iterator[float]:
        """Arrival times of the audible frames among `frames` that came after `start`, lazily:
        a long call holds thousands of frames."""
        for at, pcm in frames:
            if (
                at >= start
                and np.abs(np.frombuffer(pcm, dtype="<i2")).max(initial=0) > SILENCE_LEVEL
            ):
                yield at

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def bot_speaking(self) -> bool:
        return len(self.of_type("bot-started-speaking")) > len(self.of_type("bot-stopped-speaking"))

    def server_messages(self, kind: str) -> list[dict[str, Any]]:
        return [m["data"] for m in self.of_type("server-message") if m["data"].get("type") == kind]

    async def wait_for(self, predicate, within: float, what: str) -> Any:
        """Wait until `predicate()` is truthy, checking on each message and every 100 ms."""
        deadline = time.monotonic() + within
        while not (result := predicate()):
            if time.monotonic() > deadline:
                seen = [m.get("type") for m in self.messages]
                raise AssertionError(f"timed out waiting for {what}; saw {seen}")
            self._new_message.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_message.wait(), 0.1)
        return result


class Caller(Session):
    """One browser-like session over WebRTC: connect, speak, and keep everything the bot sends
    (its audio at 48 kHz)."""

    def __init__(self, base_url: str):
        super().__init__()
        self.base_url = base_url
        self.pc = RTCPeerConnection()
        self._reader: asyncio.Task | None = None
        self.pc_id: str | None = None  # the bot's id for this peer connection, from the answer
        self.call_url: str | None = None  # where its later requests go (the answering process)

    async def connect(self, options: dict[str, str] | None = None) -> None:
        """Call the bot; `options` (voice, language, prompt) travel with the offer."""
        self.pc.addTransceiver(self.mic, direction="sendrecv")
        self.pc.addTransceiver("video", direction="recvonly")  # SmallWebRTC expects m-line 1
        channel = self.pc.createDataChannel("chat")

        @channel.on("open")
        def on_open() -> None:
            channel.send(json.dumps({**CLIENT_READY, "id": "ready-1"}))

        @channel.on("message")
        def on_message(raw: str) -> None:
            self._received(json.loads(raw))

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._reader = asyncio.create_task(self._record(track))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{self.base_url}/api/offer",
                json={
                    "sdp": self.pc.localDescription.sdp,
                    "type": "offer",
                    "requestData": options or {},
                },
            )
        response.raise_for_status()
        answer = response.json()
        self.pc_id = answer.get("pc_id")
        self.call_url = answer.get("call_url")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    async def _record(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:  # the track ended: the call is over
                return
            for out in resampler.resample(frame):
                self.audio.append((time.monotonic(), bytes(out.planes[0])[: out.samples * 2]))

    async def close(self) -> None:
        await self.pc.close()
        if self._reader:
            self._reader.cancel()


class SocketCaller(Session):
    """One session over the bot's WebSocket (`/ws`, the page's fallback): the start message, then
    Pipecat's protobuf frames both ways, the microphone at real-time pace. The bot's audio is
    timed as a player would play it."""

    def __init__(self, url: str):
        """`url`: the WebSocket's, ws://host:port/ws."""
        super().__init__()
        self.url = url
        self.rate = 0  # of the bot's audio, as its frames say
        self._played_until = 0.0  # when the bot's audio received so far will have played
        self._ws: Any = None
        self._tasks: list[asyncio.Task] = []

    async def connect(self, options: dict[str, str] | None = None) -> None:
        """Call the bot; `options` (voice, language, prompt) go in the start message."""
        self._ws = await websockets.connect(self.url)
        await self._ws.send(json.dumps({"type": "start", **(options or {})}))
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._speak())]
        await self.send_message({**CLIENT_READY, "id": "ready-1"})

    async def send_message(self, message: dict[str, Any]) -> None:
        frame = frames_pb2.Frame()
        frame.message.data = json.dumps(message)
        await self._ws.send(frame.SerializeToString())

    async def _speak(self) -> None:
        while True:
            audio = await self.mic.recv()
            frame = frames_pb2.Frame()
            frame.audio.audio = bytes(audio.planes[0])[: FRAME_SAMPLES * 2]
            frame.audio.sample_rate = MIC_RATE
            frame.audio.num_channels = 1
            await self._ws.send(frame.SerializeToString())

    async def _receive(self) -> None:
        async for data in self._ws:
            frame = frames_pb2.Frame.FromString(data)
            kind = frame.WhichOneof("frame")
            if kind == "audio":
                self.rate = rate = frame.audio.sample_rate
                # Kept at the time it plays: the bot sends ahead of playback (Pipecat's WebSocket
                # output paces at twice real time), and a player plays it in order.
                starts = max(time.monotonic(), self._played_until)
                self._played_until = starts + len(frame.audio.audio) / (2 * rate)
                self.audio.append((starts, frame.audio.audio))
            elif kind == "message":
                self._received(json.loads(frame.message.data))

    @property
    def ended(self) -> bool:
        """The bot's side of the socket has closed."""
        return bool(self._tasks) and self._tasks[0].done()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
