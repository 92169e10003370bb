"""Both servers fuzzed from their own OpenAPI documents by Schemathesis, over real sockets to real
processes: no input gets a 5xx, every refusal is JSON in words, and the server still serves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import websockets
from hypothesis import HealthCheck, given, settings

from bot.models import bundled_whisper_path
from tests.support import free_port, server_process

pytestmark = pytest.mark.contract

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def tts_url() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Short texts only, so that the fuzzer's valid bodies synthesize in a moment.
    env = {"TTS_ENGINE": "hibari", "TTS_PORT": str(port), "TTS_MAX_TEXT_CHARS": "60"}
    with server_process(["-m", "xtts"], env=env, ready_url=f"{url}/ready", name="fuzz-tts"):
        yield url


@pytest.fixture(scope="module")
def bot_url() -> Iterator[str]:
    """A bot whose LLM and TTS servers are down: every route still answers in words."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "WHISPER_MODEL": bundled_whisper_path() or "tiny.en",
        "WHISPER_DEVICE": "cpu",
        "LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
        "XTTS_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "BOT_HOST": "127.0.0.1",
        "BOT_PORT": str(port),
        "BOT_CONNECT_TIMEOUT_SECS": "2",
    }
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/health", name="fuzz-bot"):
        for _ in range(300):  # calls are taken once Whisper is loaded
            if httpx.get(f"{url}/ready").json().get("stt"):
                break
        yield url


# Deliberate answers, each in words: an engine that cannot clone (501), a bot still loading (503).
DOCUMENTED_5XX = {501, 503}


def assert_answered_in_words(response) -> None:
    status = response.status_code
    assert status < 500 or status in DOCUMENTED_5XX, (status, response.text[:300])
    if status >= 400:
        body = response.json()
        # /ready's 503 names each problem; every other refusal is {"error": "..."}.
        error = body.get("error") or " ".join(body.get("problems", {}).values())
        assert isinstance(error, str) and error, (status, response.text[:300])
        assert "Traceback" not in error and "Error:" not in error, error


def fuzz(url: str) -> list[str]:
    """Every operation in the server's OpenAPI document, with Schemathesis's generated cases
    (valid and invalid bodies, parameters, headers); returns the operations fuzzed."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()
        fuzz_operation(operation.as_strategy(), page=operation.path == "/")
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    return fuzzed


def fuzz_operation(cases, *, page: bool) -> None:
    @given(case=cases)
    @FUZZ
    def call(case):
        response = case.call(timeout=60)
        if page:  # HTML
            assert response.status_code == 200
        else:
            assert_answered_in_words(response)

    call()


def test_the_tts_server_answers_every_request_in_words(tts_url):
    fuzzed = fuzz(tts_url)
    assert {"POST /tts_stream", "POST /tts", "GET /studio_speakers"} <= set(fuzzed), fuzzed


def test_the_bot_answers_every_request_in_words(bot_url):
    fuzzed = fuzz(bot_url)
    assert {"POST /api/offer", "PATCH /api/offer", "DELETE /api/offer"} <= set(fuzzed), fuzzed


def test_after_the_fuzzing_both_servers_still_serve(tts_url, bot_url):
    speakers = httpx.get(f"{tts_url}/studio_speakers").json()
    latents = next(iter(speakers.values()))
    speech = httpx.post(
        f"{tts_url}/tts_stream",
        json={"text": "Still here.", "language": "en", **latents, "add_wav_header": False},
        timeout=60,
    )
    assert speech.status_code == 200 and len(speech.content) > 24000  # half a second and more
    assert httpx.get(f"{tts_url}/ready").json()["queued"] == 0
    health = httpx.get(f"{bot_url}/health").json()
    assert health["status"] == "ok"


def first_messages(rng: random.Random) -> Iterator[str | bytes]:
    """A bounded, seeded mix of what a hostile client sends first on a call's WebSocket."""
    yield b"\x00\xff" * 8
    yield "not json"
    yield "[" * 5000 + "]" * 5000
    yield "x" * 70_000
    yield json.dumps([1, 2, 3])
    yield json.dumps({"type": "start", "voice": ["a"], "language": 7})
    yield json.dumps({"type": "start", "prompt": "p" * 5000})
    yield json.dumps({"type": "start", "language": "xx-yy", "extra": {"deep": [None] * 50}})
    values = [None, True, 0, -1, 1e308, "", "\u0000", "é" * 40, [], {}, {"a": [1]}]
    keys = ["type", "voice", "language", "prompt", "profile", "sdp"]
    for _ in range(24):
        message = {rng.choice(keys): rng.choice(values) for _ in range(rng.randint(0, 4))}
        if rng.random() < 0.5:
            message["type"] = "start"
        yield json.dumps(message)


async def test_the_call_websockets_refuse_hostile_frames_with_a_close_code(bot_url):
    """/ws and /twilio/ws: each hostile first frame is refused with a close code and a reason
    (or, for a valid start, a call that then survives garbage frames); the bot goes on."""
    rng = random.Random(11)
    ws_base = bot_url.replace("http://", "ws://")
    codes = set()
    for first in first_messages(rng):
        async with websockets.connect(f"{ws_base}/ws", max_size=None) as ws:
            await ws.send(first)
            try:
                while True:  # an error message, then the close; or a call's frames
                    reply = await asyncio.wait_for(ws.recv(), 10)
                    if isinstance(reply, bytes):  # the call was taken: garbage frames next
                        for size in (1, 3, 4096):
                            await ws.send(rng.randbytes(size))
                        break
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None, f"no close frame for {first[:60]!r}"
                codes.add(closed.rcvd.code)
                assert closed.rcvd.code in (1008, 1009, 1013), (closed.rcvd, first[:60])
                assert closed.rcvd.reason, f"a close without a reason for {first[:60]!r}"
        twilio_frames = [first, json.dumps({"event": "start", "start": repr(first[:100])})]
        async with websockets.connect(f"{ws_base}/twilio/ws", max_size=None) as ws:
            for frame in twilio_frames:
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send(frame)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 15)
            assert closed.value.rcvd.code in (1008, 1009), closed.value.rcvd
    assert 1008 in codes
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            if (await client.get(f"{bot_url}/health")).json()["calls"] == 0:
                break
            await asyncio.sleep(0.2)
        assert (await client.get(f"{bot_url}/health")).json() == {
            "status": "ok",
            "loading": False,
            "calls": 0,
            "max_calls": os.cpu_count(),
            "refused": 0,
        }
