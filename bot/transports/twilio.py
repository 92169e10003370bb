"""Phone calls through Twilio Media Streams: the voice webhook and the stream's WebSocket.

Two locks on the door: Twilio's request signature (webhook and WebSocket upgrade, checked
against PUBLIC_URL with Twilio's own validator), and a one-time stream token minted in the signed
webhook and redeemed in the stream's `start` message before any pipeline starts.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from loguru import logger
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from twilio.request_validator import RequestValidator

from bot.calls import CallManager
from bot.config import Settings
from bot.pipeline import audio_params
from bot.transports.websocket import MAX_MESSAGE_BYTES, POLICY_VIOLATION, TRY_AGAIN_LATER

_TOKEN_TTL_SECS = 30.0
_START_TIMEOUT_SECS = 10.0
_XML = '<?xml version="1.0" encoding="UTF-8"?>'
APOLOGY = "Sorry, our assistant is not available right now. Please call again later. Goodbye."
BUSY = "Sorry, all our lines are busy right now. Please call again in a few minutes. Goodbye."


class StreamTokens:
    """One-time, short-lived tokens: minted by the webhook, redeemed once by the stream."""

    def __init__(self, ttl_secs: float = _TOKEN_TTL_SECS):
        self._ttl = ttl_secs
        self._issued: dict[str, float] = {}

    def mint(self) -> str:
        now = time.monotonic()
        self._issued = {t: at for t, at in self._issued.items() if now - at < self._ttl}
        token = secrets.token_urlsafe(24)
        self._issued[token] = now
        return token

    def redeem(self, token: object) -> bool:
        if not isinstance(token, str):
            return False
        now = time.monotonic()
        for issued, at in list(self._issued.items()):
            if hmac.compare_digest(issued, token):
                del self._issued[issued]  # single use
                return now - at < self._ttl
        return False


def stream_url(settings: Settings, request_host: str) -> str:
    base = settings.public_url or f"https://{request_host}"
    return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/twilio/ws"


async def start_recording(settings: Settings, call_sid: str) -> None:
    """Ask Twilio to record the call on two channels (the caller and the bot apart)."""
    from twilio.rest import Client

    client = Client(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value())
    client.api.base_url = settings.twilio_api_base_url
    try:
        await asyncio.to_thread(
            lambda: client.calls(call_sid).recordings.create(recording_channels="dual")
        )
        logger.info("Twilio records this call (dual channel)")
    except Exception as error:  # the call goes on unrecorded
        logger.warning(f"call recording could not start ({error.__class__.__name__})")


def twilio_router(calls: CallManager) -> APIRouter:
    settings = calls.settings
    token = settings.twilio_auth_token.get_secret_value()
    validator = RequestValidator(token) if token else None
    tokens = StreamTokens()
    router = APIRouter()

    if validator is None:
        if settings.bot_mode == "production":
            raise SystemExit("TWILIO_AUTH_TOKEN: required when BOT_MODE=production (phone calls)")
        logger.warning(
            "TWILIO_AUTH_TOKEN is not set: Twilio requests are NOT authenticated "
            "(fine for local tests; set it before taking real calls)"
        )

    def signed(url: str, params: dict, signature: str | None) -> bool:
        return validator is None or validator.validate(url, params, signature or "")

    @router.post("/twilio/voice")
    async def voice(request: Request) -> Response:
        """Answer at once (never waits for models): connect the call to the stream."""
        form = dict(await request.form())
        url = (settings.public_url or str(request.base_url).rstrip("/")) + "/twilio/voice"
        if not signed(url, form, request.headers.get("x-twilio-signature")):
            logger.warning("Twilio webhook refused: bad or missing signature")
            return JSONResponse({"error": "X-Twilio-Signature: missing or invalid"}, 403)
        if not calls.has_room():
            busy = f"<Say>{escape(BUSY)}</Say><Hangup/>"
            return Response(f"{_XML}<Response>{busy}</Response>", media_type="application/xml")
        parameters = {
            "token": tokens.mint(),
            **{
                key: str(form[key])
                for key in ("CallSid", "AccountSid", "From", "To")
                if key in form
            },
        }
        params_xml = "".join(
            f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items()
        )
        ws_url = stream_url(settings, request.headers.get("host", "localhost"))
        twiml = (
            f"{_XML}<Response><Connect>"
            f"<Stream url={quoteattr(ws_url)}>{params_xml}</Stream></Connect>"
            f"<Say>{escape(APOLOGY)}</Say></Response>"
        )
        return Response(twiml, media_type="application/xml")

    async def start_message(websocket: WebSocket) -> dict | None:
        """Read Twilio's `connected` and `start`, skipping frames that are malformed or too big."""
        while True:
            raw = await websocket.receive_text()
            if len(raw) > MAX_MESSAGE_BYTES:
                logger.info(f"Twilio stream: skipped a {len(raw)}-byte message (over the cap)")
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                logger.info("Twilio stream: skipped a malformed JSON message")
                continue
            if isinstance(message, dict) and message.get("event") == "start":
                return message
            if isinstance(message, dict) and message.get("event") == "stop":
                return None

    @router.websocket("/twilio/ws")
    async def stream(websocket: WebSocket) -> None:
        url = stream_url(settings, websocket.headers.get("host", "localhost"))
        if not signed(url, {}, websocket.headers.get("x-twilio-signature")):
            logger.warning("Twilio stream refused: bad or missing signature")
            return await websocket.close(POLICY_VIOLATION)  # before accepting: a 403 handshake
        await websocket.accept()
        try:
            start = await asyncio.wait_for(start_message(websocket), _START_TIMEOUT_SECS)
        except (TimeoutError, Exception):
            return await websocket.close(POLICY_VIOLATION)
        details = (start or {}).get("start")
        details = details if isinstance(details, dict) else {}
        custom = details.get("customParameters")
        custom = custom if isinstance(custom, dict) else {}
        if not tokens.redeem(custom.get("token")):
            logger.warning("Twilio stream refused: stream token missing, reused or expired")
            return await websocket.close(POLICY_VIOLATION)
        if not calls.ready:
            return await websocket.close(TRY_AGAIN_LATER, reason="the bot is still loading")
        account_sid = settings.twilio_account_sid or details.get("accountSid")
        can_hang_up = bool(settings.twilio_account_sid and token)
        serializer = TwilioFrameSerializer(
            stream_sid=details.get("streamSid") or start.get("streamSid", ""),
            call_sid=details.get("callSid"),
            account_sid=account_sid if can_hang_up else None,
            auth_token=token if can_hang_up else None,
            base_url=settings.twilio_api_base_url,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=can_hang_up),
        )
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                **audio_params(settings), serializer=serializer, add_wav_header=False
            ),
        )
        options = await calls.options(None)
        # Placed between the webhook and the stream by another call: Twilio goes on to the
        # TwiML after <Connect>, which tells the caller in words.
        if not calls.admit():
            return await websocket.close(TRY_AGAIN_LATER, reason=calls.busy_message()[:120])
        call = calls.start(transport, options, kind="phone")
        if can_hang_up and settings.twilio_record_calls and details.get("callSid"):
            await start_recording(settings, details["callSid"])
        await call

    return router
