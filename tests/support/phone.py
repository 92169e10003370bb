"""Twilio's side of a phone call, emulated as its documented Media Streams protocol: the signed
webhook, the TwiML's stream, and one Media Stream. Signatures come from Twilio's own library."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import xml.etree.ElementTree as ET

import httpx
import websockets
from twilio.request_validator import RequestValidator

from bot.models import bundled_whisper_path
from tests.support import ulaw2lin, wait_until

AUTH_TOKEN = "emulated-twilio-auth-token"  # a test value, not a credential
FRAME = 160  # 20 ms of 8 kHz μ-law
CALL = {"CallSid": "CA0001", "AccountSid": "AC0001", "From": "+15550001111", "To": "+15550002222"}


def phone_bot_env(stack, port: int, **extra: str) -> dict[str, str]:
    """A bot on `port` using the stack's LLM and TTS, reached by Twilio at its own address."""
    return {
        "WHISPER_MODEL": bundled_whisper_path() or "tiny.en",
        "WHISPER_DEVICE": "cpu",
        "LLM_BASE_URL": f"{stack.llm_url}/v1",
        "LLM_MODEL": "local",
        "XTTS_BASE_URL": stack.tts_url,
        "BOT_HOST": "127.0.0.1",
        "BOT_PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        **extra,
    }


def signed_webhook(bot: str, params: dict, signature: str | None = None) -> httpx.Response:
    url = f"{bot}/twilio/voice"
    signature = signature or RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    return httpx.post(url, data=params, headers={"X-Twilio-Signature": signature})


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    return stream.get("url"), {p.get("name"): p.get("value") for p in stream.findall("Parameter")}


async def open_stream(url: str):
    """Twilio opening the TwiML's stream at `url`: the WebSocket upgrade, signed."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {})
    return websockets.connect(url, additional_headers={"X-Twilio-Signature": signature})


class PhoneLine:
    """Twilio's side of one Media Stream."""

    def __init__(self, ws, stream_sid: str = "MZ0001"):
        self.ws, self.stream_sid = ws, stream_sid
        self.events: list[dict] = []
        self.audio: list[tuple[float, bytes]] = []  # (arrival, 8 kHz s16le)
        self._pending = b""

    async def start(self, token: str | None) -> None:
        await self.ws.send(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        custom = {"token": token} if token else {}
        await self.ws.send(
            json.dumps(
                {
                    "event": "start",
                    "sequenceNumber": "1",
                    "streamSid": self.stream_sid,
                    "start": {
                        "streamSid": self.stream_sid,
                        "accountSid": CALL["AccountSid"],
                        "callSid": CALL["CallSid"],
                        "tracks": ["inbound"],
                        "customParameters": custom,
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                    },
                }
            )
        )

    def say(self, mulaw: bytes) -> None:
        self._pending += mulaw

    async def microphone(self) -> None:
        start, n = time.monotonic(), 0
        while True:
            chunk, self._pending = self._pending[:FRAME], self._pending[FRAME:]
            payload = base64.b64encode(chunk.ljust(FRAME, b"\xff")).decode()  # 0xff: μ-law silence
            n += 1
            await self.ws.send(
                json.dumps(
                    {
                        "event": "media",
                        "streamSid": self.stream_sid,
                        "media": {
                            "track": "inbound",
                            "chunk": str(n),
                            "timestamp": str(n * 20),
                            "payload": payload,
                        },
                    }
                )
            )
            await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))

    async def receive(self) -> None:
        async for raw in self.ws:
            event = json.loads(raw)
            self.events.append(event)
            if event.get("event") == "media":
                mulaw = base64.b64decode(event["media"]["payload"])
                self.audio.append((time.monotonic(), ulaw2lin(mulaw)))

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == kind]

    async def wait_for(self, predicate, within: float, what: str):
        return await wait_until(predicate, within, what)
