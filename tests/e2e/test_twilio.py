"""Phone calls: a Twilio emulator that follows the documented Media Streams protocol, against the
real bot. Only Twilio's cloud is emulated; signatures come from Twilio's own library."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import numpy as np
import pytest
import soxr
import websockets

from scripts.caller import read_wav
from tests.support import (
    ARTIFACTS,
    FIXTURES,
    ROOT,
    free_port,
    lin2ulaw,
    rms,
    server_process,
    transcribe,
)
from tests.support.phone import (
    AUTH_TOKEN,
    CALL,
    PhoneLine,
    open_stream,
    phone_bot_env,
    signed_webhook,
    stream_of,
)

pytestmark = pytest.mark.e2e

PCM_16K = np.frombuffer(read_wav(FIXTURES / "questions" / "france.wav"), "<i2")
QUESTION = lin2ulaw(soxr.resample(PCM_16K, 16000, 8000).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def phone_bot(stack):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = phone_bot_env(stack, port)
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/ready", name="phone-bot"):
        yield url


def test_a_signed_webhook_gets_twiml_with_a_stream_and_a_token(phone_bot):
    response = signed_webhook(phone_bot, CALL)
    assert response.status_code == 200
    url, parameters = stream_of(response.text)
    assert url == phone_bot.replace("http://", "ws://") + "/twilio/ws"
    assert len(parameters["token"]) >= 24
    assert parameters["CallSid"] == "CA0001" and parameters["From"] == CALL["From"]
    assert "Sorry" in ET.fromstring(response.text).find("Say").text  # after the stream ends


@pytest.mark.parametrize("signature", ["forged-signature", ""])
def test_a_forged_or_missing_signature_gets_403(phone_bot, signature):
    url = f"{phone_bot}/twilio/voice"
    headers = {"X-Twilio-Signature": signature} if signature else {}
    response = httpx.post(url, data=CALL, headers=headers)
    assert response.status_code == 403
    assert response.json() == {"error": "X-Twilio-Signature: missing or invalid"}


async def test_an_unsigned_stream_upgrade_is_refused(phone_bot):
    url, _ = stream_of(signed_webhook(phone_bot, CALL).text)
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url):
            pass
    assert refused.value.response.status_code == 403


async def hear_the_greeting(url: str, token: str) -> None:
    """Open the stream with `token` and wait until the greeting's audio arrives."""
    async with await open_stream(url) as ws:
        line = PhoneLine(ws)
        await line.start(token)
        receiving = asyncio.create_task(line.receive())
        try:
            await line.wait_for(lambda: line.audio, 60, "the greeting")
        finally:
            receiving.cancel()


@pytest.mark.parametrize("token", ["reused", None, "made-up"])
async def test_a_reused_missing_or_unknown_token_closes_before_any_pipeline(phone_bot, token):
    url, parameters = stream_of(signed_webhook(phone_bot, CALL).text)
    if token == "reused":
        await hear_the_greeting(url, parameters["token"])  # the first use is fine...
        token = parameters["token"]
    async with await open_stream(url) as ws:
        line = PhoneLine(ws)
        await line.start(token)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1008
        assert not line.of("media")


async def test_a_spoken_question_gets_a_spoken_answer_and_barge_in_clears(phone_bot):
    url, parameters = stream_of(signed_webhook(phone_bot, CALL).text)
    async with await open_stream(url) as ws:
        line = PhoneLine(ws)
        await line.start(parameters["token"])
        tasks = [asyncio.create_task(line.receive()), asyncio.create_task(line.microphone())]
        try:
            # The greeting plays; talking over it makes the bot send `clear`.
            await line.wait_for(lambda: line.audio, 60, "the greeting")
            assert all(e["streamSid"] == "MZ0001" for e in line.of("media"))
            asked = time.monotonic()
            line.say(QUESTION)
            await line.wait_for(lambda: line.of("clear"), 30, "a clear on barge-in")
            # Then the answer: μ-law media that Whisper understands.
            await line.wait_for(
                lambda: sum(len(pcm) for at, pcm in line.audio if at > asked + 3) > 16000,
                90,
                "an answer",
            )
            # The answer is over once no audio has come for a second (the bot sends no silence).
            await line.wait_for(lambda: time.monotonic() - line.audio[-1][0] > 1, 60, "its end")
            answer = b"".join(pcm for at, pcm in line.audio if at > asked + 3)
            assert rms(answer) > 0.01
            assert len(transcribe(answer, 8000).split()) >= 2
        finally:
            for task in tasks:
                task.cancel()


async def test_garbage_and_oversized_frames_leave_the_server_serving(phone_bot):
    url, parameters = stream_of(signed_webhook(phone_bot, CALL).text)
    async with await open_stream(url) as ws:
        await ws.send("this is not json")
        await ws.send(json.dumps({"event": "mystery"}))
        await PhoneLine(ws).start(parameters["token"])
        await ws.send("{broken")
        await ws.send("x" * (128 * 1024))  # over the cap: the socket is closed, 1009
        with pytest.raises(websockets.ConnectionClosed):
            for _ in range(1000):
                await asyncio.wait_for(ws.recv(), 10)
    # The next call is served.
    assert (await asyncio.to_thread(httpx.get, f"{phone_bot}/health")).status_code == 200
    url, parameters = stream_of(signed_webhook(phone_bot, CALL).text)
    await hear_the_greeting(url, parameters["token"])


@pytest.fixture(scope="module")
def emulated_twilio_rest():
    """Twilio's REST API, which cannot be reached from here: a local stand-in that records what
    the bot asks of it and answers as Twilio documents."""
    requests: list[tuple[str, str, dict, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            requests.append(
                (self.command, self.path, parse_qs(body), self.headers.get("Authorization", ""))
            )
            self._json(201, {"sid": "RE0001", "account_sid": "AC0001", "call_sid": "CA0001"})

        def do_GET(self):
            requests.append((self.command, self.path, {}, self.headers.get("Authorization", "")))
            number = {
                "sid": "PN0001",
                "account_sid": "AC0001",
                "phone_number": "+15550002222",
                "voice_url": "",
            }
            listing = {"incoming_phone_numbers": [number], "next_page_uri": None}
            self._json(200, listing)

        def _json(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


async def test_calls_are_recorded_on_two_channels_with_emulated_twilio_rest(
    stack, emulated_twilio_rest
):
    rest_url, requests = emulated_twilio_rest
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = phone_bot_env(
        stack,
        port,
        TWILIO_ACCOUNT_SID="AC0001",
        TWILIO_RECORD_CALLS="true",
        TWILIO_API_BASE_URL=rest_url,
    )
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/ready", name="recording-bot"):
        ws_url, parameters = stream_of(signed_webhook(url, CALL).text)
        async with await open_stream(ws_url) as ws:
            line = PhoneLine(ws)
            await line.start(parameters["token"])
            receiving = asyncio.create_task(line.receive())
            try:
                await line.wait_for(lambda: line.audio, 60, "the greeting")
            finally:
                receiving.cancel()
    recordings = [r for r in requests if r[1].endswith("/Calls/CA0001/Recordings.json")]
    assert recordings, requests
    method, path, form, authorization = recordings[0]
    assert (method, path) == ("POST", "/2010-04-01/Accounts/AC0001/Calls/CA0001/Recordings.json")
    assert form["RecordingChannels"] == ["dual"]
    assert authorization.startswith("Basic ")  # the account's credentials, never logged
    assert AUTH_TOKEN not in (ARTIFACTS / "recording-bot.log").read_text()


def test_twilio_setup_points_the_number_at_the_webhook_with_emulated_twilio_rest(
    emulated_twilio_rest,
):
    rest_url, requests = emulated_twilio_rest
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": "AC0001",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_URL": "https://kit.example.org",
        "TWILIO_API_BASE_URL": rest_url,
    }
    done = subprocess.run(
        [sys.executable, "scripts/twilio_setup.py", "+15550002222"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "calls to +15550002222 now reach https://kit.example.org/twilio/voice"
    )
    update = [
        r
        for r in requests
        if r[1] == "/2010-04-01/Accounts/AC0001/IncomingPhoneNumbers/PN0001.json"
    ]
    assert update and update[-1][2]["VoiceUrl"] == ["https://kit.example.org/twilio/voice"]
    assert update[-1][2]["VoiceMethod"] == ["POST"]


def test_twilio_setup_says_what_is_missing():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "PUBLIC_URL"))}
    done = subprocess.run(
        [sys.executable, "scripts/twilio_setup.py", "+15550002222"],
        cwd=ROOT,
        env={**env, "PUBLIC_URL": "http://insecure.example.org"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN (in .env or the environment)"
    )
