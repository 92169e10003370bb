"""Browser calls over WebRTC: SmallWebRTC signalling on `/api/offer`, one pipeline per peer."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from loguru import logger
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pydantic import (
    BaseModel,
    Field,
    Strict,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
)

from bot import pipecat_compat
from bot.calls import CallManager
from bot.options import BadOptions, CallOptions
from bot.pipeline import transport_params
from bot.replica import public_path
from bot.transports.quiet_track import use_quiet_track

# An SDP offer is a few kilobytes; the persona prompt in requestData is capped at 4000 characters.
MAX_BODY_BYTES = 256 * 1024


# What each field must be, in the words a 400 gives when it is not.
_FIELD_RULES = {
    "sdp": "the browser's SDP offer, a string",
    "type": "'offer'",
    "pc_id": "the id returned with the answer, a string",
    "restart_pc": "true or false",
    "candidates": "a list of ICE candidates",
    "candidate": "the ICE candidate, a string",
    "sdp_mid": "a string",
    "sdp_mline_index": "a whole number from 0 to 63",
}


class _Candidate(BaseModel):
    candidate: StrictStr
    sdp_mid: StrictStr | None = None
    sdp_mline_index: Annotated[int, Strict(), Field(ge=0, lt=64)] | None = None


class _OfferBody(BaseModel):
    """What the page posts to start a call (or renegotiate one)."""

    sdp: StrictStr = Field(description="the browser's SDP offer, with an audio section")
    type: Literal["offer"] = Field(description="always 'offer'")
    pc_id: StrictStr | None = None
    restart_pc: StrictBool | None = None
    # Checked by CallOptions, in its own words; documented as the object it should be.
    requestData: Any = Field(
        None,
        description="the caller's voice, language and prompt",
        json_schema_extra={"type": "object"},
    )
    request_data: Any = Field(None, json_schema_extra={"type": "object"})

    @field_validator("sdp")
    @classmethod
    def _has_audio(cls, sdp: str) -> str:
        if not sdp.strip():
            raise ValueError(f"must be {_FIELD_RULES['sdp']}, not blank")
        if "\nm=audio " not in sdp.replace("\r\n", "\n"):
            raise ValueError(
                "the offer has no audio section (m=audio); the bot needs a microphone track"
            )
        return sdp

    def request(self) -> SmallWebRTCRequest:
        data = self.requestData if self.requestData is not None else self.request_data
        return SmallWebRTCRequest(self.sdp, self.type, self.pc_id, self.restart_pc, data)


class _CandidatesBody(BaseModel):
    pc_id: StrictStr = Field(description="the id returned with the answer")
    candidates: list[_Candidate]

    def request(self) -> SmallWebRTCPatchRequest:
        candidates = [
            IceCandidate(c.candidate, c.sdp_mid or "0", c.sdp_mline_index or 0)
            for c in self.candidates
        ]
        return SmallWebRTCPatchRequest(pc_id=self.pc_id, candidates=candidates)


class _AbandonBody(BaseModel):
    pc_id: str


def _problem(error: ValidationError) -> str:
    """The first thing wrong with a body, as `field: what it must be` (`candidates[0].sdp_mid`)."""
    first = error.errors()[0]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
    field = next((part for part in reversed(first["loc"]) if isinstance(part, str)), "")
    if first["type"] == "value_error":
        return f"{path.lstrip('.')}: {first.get('ctx', {}).get('error')}"
    rule = _FIELD_RULES.get(field)
    if rule is None:
        return f"{path.lstrip('.')}: {first['msg']}"
    return f"{path.lstrip('.')}: {'required,' if first['type'] == 'missing' else 'must be'} {rule}"


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a body the route reads itself (with a size cap, and answers in its own
    words): the model's schema, so clients and fuzzers see it."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items()}
        return [inline(item) for item in node] if isinstance(node, list) else node

    content = {"application/json": {"schema": inline(schema)}}
    return {"requestBody": {"required": True, "content": content}}


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _busy(message: str) -> JSONResponse:
    """503 with Retry-After: the bot cannot take a call now, and says why."""
    return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": "5"})


async def capped_body(request: Request) -> bytes | JSONResponse:
    """The request's body, read no further than MAX_BODY_BYTES (413 in words beyond)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"body over {MAX_BODY_BYTES} bytes"}, 413)
    return raw


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    raw = await capped_body(request)
    if isinstance(raw, JSONResponse):
        return raw
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be an offer
        return _bad_request("body must be JSON")
    if not isinstance(body, dict):
        return _bad_request("body must be a JSON object")
    return body


def _parse(model: type[_OfferBody | _CandidatesBody], body: dict[str, Any]) -> Any:
    """The body as `model`'s request, or what is wrong with it in words."""
    try:
        return model.model_validate(body).request()
    except ValidationError as error:
        return _problem(error)


def webrtc_router(calls: CallManager, handler: SmallWebRTCRequestHandler) -> APIRouter:
    """The page's signalling routes: offer, ICE candidates, and giving up on an offer."""
    signalling = Signalling(calls, handler)
    router = APIRouter()
    router.add_api_route(
        "/api/offer", signalling.offer, methods=["POST"], openapi_extra=_body(_OfferBody)
    )
    router.add_api_route(
        "/api/offer", signalling.abandon, methods=["DELETE"], openapi_extra=_body(_AbandonBody)
    )
    router.add_api_route(
        "/api/offer",
        signalling.ice_candidates,
        methods=["PATCH"],
        openapi_extra=_body(_CandidatesBody),
    )
    return router


class Signalling:
    """SmallWebRTC signalling for the page: one call per peer connection, by its pc_id."""

    def __init__(self, calls: CallManager, handler: SmallWebRTCRequestHandler) -> None:
        self.calls = calls
        self.handler = handler
        self.offered: dict[str, asyncio.Task] = {}  # each WebRTC call by its pc_id
        use_quiet_track()  # no packets of silence between answers

    def call_starter(self, options: CallOptions, started: list[bool]):
        """The callback the handler runs with a new peer connection: it starts the call."""

        async def start_call(connection: SmallWebRTCConnection) -> None:
            # The caller's audio is held this many packets before it is decoded.
            packets = self.calls.settings.bot_webrtc_jitter_packets
            pipecat_compat.set_jitter_prefetch(connection, packets)
            transport = SmallWebRTCTransport(
                webrtc_connection=connection, params=transport_params()
            )
            # However the call ends, its peer connection (and UDP ports) goes with it.
            call = self.calls.start(
                transport, options, kind="webrtc", hang_up=connection.disconnect
            )
            started.append(True)
            self.offered[connection.pc_id] = call
            call.add_done_callback(lambda _: self.offered.pop(connection.pc_id, None))

        return start_call

    async def offer(self, request: Request) -> Any:
        """Start a call (or renegotiate one): the browser's SDP offer in, the bot's answer out."""
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        parsed = _parse(_OfferBody, body)
        if isinstance(parsed, str):
            return _bad_request(parsed)
        calls = self.calls
        if not calls.ready:
            return _busy("the bot is still loading; retry shortly")
        try:
            options = await calls.options(parsed.request_data)
        except BadOptions as error:
            return _bad_request(str(error))
        if not calls.admit():
            return _busy(calls.busy_message())
        started: list[bool] = []
        try:
            answer = await self.handler.handle_web_request(
                parsed, self.call_starter(options, started)
            )
            assert answer is not None  # the handler raises rather than answer nothing
            # Where this call's candidates and hang-up go: this process, behind a proxy too.
            return {**answer, "call_url": public_path(request, "/api/offer")}
        except HTTPException as error:  # the handler's own refusals are words for the caller
            return JSONResponse({"error": str(error.detail)}, error.status_code)
        except Exception as error:  # aiortc's SDP parsers raise anything from ValueError on
            # Its words describe aiortc's internals, not the caller's mistake: logged, not sent.
            logger.info(f"WebRTC offer refused ({error.__class__.__name__})")
            logger.opt(exception=error).debug(f"WebRTC offer refused: {error}")
            return _bad_request(
                "the offer could not be used: aiortc could not read its SDP or set up its media"
            )
        finally:
            if not started:  # failed, or a renegotiation of a call that has its place
                calls.release()

    async def abandon(self, request: Request) -> Any:
        """The page gave up on an offer (WebRTC did not connect): end that call, free its place."""
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        pc_id = body.get("pc_id")
        call = self.offered.get(pc_id) if isinstance(pc_id, str) else None
        if call is None:
            return JSONResponse({"error": "pc_id: no call with this id (it may have ended)"}, 404)
        call.cancel()
        await asyncio.wait([call], timeout=5)  # answered once the place is free
        return {"status": "ended"}

    async def ice_candidates(self, request: Request) -> Any:
        """The browser's trickled ICE candidates, for the call with this pc_id."""
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        parsed = _parse(_CandidatesBody, body)
        if isinstance(parsed, str):
            return _bad_request(parsed)
        try:
            await self.handler.handle_patch_request(parsed)
        except HTTPException as error:  # the handler's own refusals (unknown pc_id) are words
            return JSONResponse({"error": str(error.detail)}, error.status_code)
        except Exception as error:  # aiortc may raise anything on a candidate it cannot use
            # Its text describes aiortc's internals: it stays in the log.
            logger.opt(exception=error).debug(
                f"ICE candidates refused: {error.__class__.__name__}: {error}"
            )
            return _bad_request("candidates: aiortc could not use them")
        return {"status": "ok"}
