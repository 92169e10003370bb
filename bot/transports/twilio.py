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

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from loguru import logger
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from starlette.requests import HTTPConnection
from twilio.request_validator import RequestValidator

from bot.calls import CallManager
from bot.config import Settings
from bot.pipeline import audio_params
from bot.replica import others_may_answer, public_path
from bot.transports.websocket import MAX_MESSAGE_BYTES, POLICY_VIOLATION, TRY_AGAIN_LATER

STREAM_PATH = "/twilio/ws"
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


def stream_url(settings: Settings, connection: HTTPConnection) -> str:
    """The stream's URL as Twilio has it: this replica's, behind the kit's proxy."""
    base = settings.public_url or f"https://{connection.headers.get('host', 'localhost')}"
    path = public_path(connection, STREAM_PATH)
    return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + path


async def start_recording(settings: Settings, call_sid: str) -> None:
    """Ask Twilio to record the call on two channels (the caller and the bot apart)."""
    from twilio.base.exceptions import TwilioException
    from twilio.rest import Client

    client = Client(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value())
    client.api.base_url = settings.twilio_api_base_url
    try:
        await asyncio.to_thread(
            lambda: client.calls(call_sid).recordings.create(recording_channels="dual")
        )
        logger.info("Twilio records this call (dual channel)")
    except (TwilioException, OSError) as error:  # Twilio refused, or could not be reached
        # (requests' errors are OSErrors). The call goes on unrecorded.
        logger.warning(f"call recording could not start ({error.__class__.__name__})")
        logger.opt(exception=error).debug("call recording: the cause")


def twilio_router(calls: CallManager) -> APIRouter:
    """The phone line's routes: the voice webhook and the media stream's WebSocket."""
    line = PhoneLine(calls)
    router = APIRouter()
    router.add_api_route("/twilio/voice", line.voice, methods=["POST"])
    router.add_api_websocket_route(STREAM_PATH, line.stream)
    return router


class PhoneLine:
    """One bot's Twilio number: the signature check, the stream tokens and the two handlers."""

    def __init__(self, calls: CallManager) -> None:
        self.calls = calls
        self.settings = settings = calls.settings
        self.token = settings.twilio_auth_token.get_secret_value()
        self.validator = RequestValidator(self.token) if self.token else None
        self.tokens = StreamTokens()
        if self.validator is None:
            if settings.bot_mode == "production":
                raise SystemExit(
                    "TWILIO_AUTH_TOKEN: required when BOT_MODE=production (phone calls)"
                )
            logger.warning(
                "TWILIO_AUTH_TOKEN is not set: Twilio requests are NOT authenticated "
                "(fine for local tests; set it before taking real calls)"
            )

    def signed(self, url: str, params: dict, signature: str | None) -> bool:
        """Twilio signed this request (always true without TWILIO_AUTH_TOKEN: local tests)."""
        return self.validator is None or self.validator.validate(url, params, signature or "")

    async def voice(self, request: Request) -> Response:
        """Answer at once (never waits for models): connect the call to the stream."""
        settings = self.settings
        form = dict(await request.form())
        url = (settings.public_url or str(request.base_url).rstrip("/")) + "/twilio/voice"
        if not self.signed(url, form, request.headers.get("x-twilio-signature")):
            logger.warning("Twilio webhook refused: bad or missing signature")
            return JSONResponse({"error": "X-Twilio-Signature: missing or invalid"}, 403)
        if not self.calls.has_room():
            if others_may_answer(request):  # the proxy tries the other replicas first
                return JSONResponse({"error": self.calls.busy_message()}, 503)
            busy = f"<Say>{escape(BUSY)}</Say><Hangup/>"
            return Response(f"{_XML}<Response>{busy}</Response>", media_type="application/xml")
        parameters = {
            "token": self.tokens.mint(),
            **{
                key: str(form[key])
                for key in ("CallSid", "AccountSid", "From", "To")
                if key in form
            },
        }
        twiml = _connect_twiml(stream_url(settings, request), parameters)
        return Response(twiml, media_type="application/xml")

    async def stream(self, websocket: WebSocket) -> None:
        """The call's audio: checked (signature, then stream token) before any pipeline starts."""
        settings, calls = self.settings, self.calls
        if not self.signed(
            stream_url(settings, websocket), {}, websocket.headers.get("x-twilio-signature")
        ):
            logger.warning("Twilio stream refused: bad or missing signature")
            return await websocket.close(POLICY_VIOLATION)  # before accepting: a 403 handshake
        await websocket.accept()
        try:
            start = await asyncio.wait_for(start_message(websocket), _START_TIMEOUT_SECS)
        except (TimeoutError, WebSocketDisconnect, RuntimeError, KeyError, RecursionError):
            # No `start` in time, the caller gone, a binary frame (no "text" in it), or JSON
            # nested too deep to parse.
            return await websocket.close(POLICY_VIOLATION)
        start = start or {}  # the stream stopped first: it has no token, and is refused below
        details = _dict(start.get("start"))
        if not self.tokens.redeem(_dict(details.get("customParameters")).get("token")):
            logger.warning("Twilio stream refused: stream token missing, reused or expired")
            return await websocket.close(POLICY_VIOLATION)
        if not calls.ready:
            return await websocket.close(TRY_AGAIN_LATER, reason="the bot is still loading")
        can_hang_up = bool(settings.twilio_account_sid and self.token)
        serializer = self.serializer(start, details, can_hang_up)
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(**audio_params(), serializer=serializer, add_wav_header=False),
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

    def serializer(self, start: dict, details: dict, can_hang_up: bool) -> TwilioFrameSerializer:
        """Pipecat's Twilio serializer for this stream; it hangs up through Twilio's API when it
        has the account's credentials."""
        settings = self.settings
        account_sid = settings.twilio_account_sid or details.get("accountSid")
        return TwilioFrameSerializer(
            stream_sid=details.get("streamSid") or start.get("streamSid", ""),
            call_sid=details.get("callSid"),
            account_sid=account_sid if can_hang_up else None,
            auth_token=self.token if can_hang_up else None,
            base_url=settings.twilio_api_base_url,
            params=TwilioFrameSerializer.InputParams(auto_hang_up=can_hang_up),
        )


def _connect_twiml(ws_url: str, parameters: dict[str, str]) -> str:
    """TwiML that connects the call to the stream, and apologises should the stream end."""
    params_xml = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items()
    )
    return (
        f"{_XML}<Response><Connect>"
        f"<Stream url={quoteattr(ws_url)}>{params_xml}</Stream></Connect>"
        f"<Say>{escape(APOLOGY)}</Say></Response>"
    )


def _dict(value: object) -> dict:
    """`value` when it is a JSON object, else an empty one (Twilio's fields are not trusted)."""
    return value if isinstance(value, dict) else {}


async def start_message(websocket: WebSocket) -> dict | None:
    """Read Twilio's `connected` and `start`, skipping frames that are malformed or too big;
    None when the stream stops first."""
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
