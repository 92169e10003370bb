"""Browser calls over WebRTC: SmallWebRTC signalling on `/api/offer`, one pipeline per peer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

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
from pydantic import BaseModel, Field

from bot.calls import CallManager
from bot.options import BadOptions, CallOptions
from bot.pipeline import transport_params

# An SDP offer is a few kilobytes; the persona prompt in requestData is capped at 4000 characters.
MAX_BODY_BYTES = 256 * 1024


class _Candidate(BaseModel):
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = Field(None, ge=0, lt=64)


class _OfferBody(BaseModel):
    """What the page posts (documented in the OpenAPI schema; `_parse_offer` checks it)."""

    sdp: str = Field(description="the browser's SDP offer, with an audio section")
    type: str = Field(description="always 'offer'")
    pc_id: str | None = None
    restart_pc: bool | None = None
    requestData: dict[str, str] | None = Field(
        None, description="the caller's voice, language and prompt"
    )


class _CandidatesBody(BaseModel):
    pc_id: str
    candidates: list[_Candidate]


class _AbandonBody(BaseModel):
    pc_id: str


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a body read by hand: its schema, so clients and fuzzers see it."""
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


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            return JSONResponse({"error": f"body over {MAX_BODY_BYTES} bytes"}, 413)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be an offer
        return _bad_request("body must be JSON")
    if not isinstance(body, dict):
        return _bad_request("body must be a JSON object")
    return body


def _parse_offer(body: dict[str, Any]) -> SmallWebRTCRequest | str:
    if not isinstance(body.get("sdp"), str) or not body["sdp"].strip():
        return "sdp: required, the browser's SDP offer as a string"
    if body.get("type") != "offer":
        return "type: must be 'offer'"
    if body.get("pc_id") is not None and not isinstance(body["pc_id"], str):
        return "pc_id: must be a string"
    if "\nm=audio " not in body["sdp"].replace("\r\n", "\n"):
        return "sdp: the offer has no audio section (m=audio); the bot needs a microphone track"
    known = {"sdp", "type", "pc_id", "restart_pc", "requestData", "request_data"}
    return SmallWebRTCRequest.from_dict({k: v for k, v in body.items() if k in known})


def _parse_patch(body: dict[str, Any]) -> SmallWebRTCPatchRequest | str:
    if not isinstance(body.get("pc_id"), str):
        return "pc_id: required, the id returned with the answer"
    candidates = body.get("candidates")
    if not isinstance(candidates, list):
        return "candidates: must be a list"
    parsed = []
    for i, c in enumerate(candidates):
        if not isinstance(c, dict) or not isinstance(c.get("candidate"), str):
            return f"candidates[{i}]: needs a 'candidate' string"
        mid, index = c.get("sdp_mid") or "0", c.get("sdp_mline_index") or 0
        if not isinstance(mid, str):
            return f"candidates[{i}].sdp_mid: must be a string"
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 64:
            return f"candidates[{i}].sdp_mline_index: must be a small whole number"
        parsed.append(IceCandidate(c["candidate"], mid, index))
    return SmallWebRTCPatchRequest(pc_id=body["pc_id"], candidates=parsed)


def webrtc_router(calls: CallManager, handler: SmallWebRTCRequestHandler) -> APIRouter:
    router = APIRouter()
    offered: dict[str, asyncio.Task] = {}  # each WebRTC call by its pc_id

    def call_starter(options: CallOptions, started: list[bool]):
        async def start_call(connection: SmallWebRTCConnection) -> None:
            transport = SmallWebRTCTransport(
                webrtc_connection=connection, params=transport_params(calls.settings)
            )
            # However the call ends, its peer connection (and UDP ports) goes with it.
            call = calls.start(transport, options, kind="webrtc", hang_up=connection.disconnect)
            started.append(True)
            offered[connection.pc_id] = call
            call.add_done_callback(lambda _: offered.pop(connection.pc_id, None))

        return start_call

    @router.post("/api/offer", openapi_extra=_body(_OfferBody))
    async def offer(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        parsed = _parse_offer(body)
        if isinstance(parsed, str):
            return _bad_request(parsed)
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
            return await handler.handle_web_request(parsed, call_starter(options, started))
        except HTTPException as error:  # the handler's own refusals are words for the caller
            return JSONResponse({"error": str(error.detail)}, error.status_code)
        except Exception as error:  # aiortc's parsers raise anything from ValueError on
            # Its words describe aiortc's internals, not the caller's mistake: logged, not sent.
            logger.info(f"WebRTC offer refused ({error.__class__.__name__})")
            logger.debug(f"WebRTC offer refused: {error}")
            return _bad_request(
                "the offer could not be used: aiortc could not read its SDP or set up its media"
            )
        finally:
            if not started:  # failed, or a renegotiation of a call that has its place
                calls.release()

    @router.delete("/api/offer", openapi_extra=_body(_AbandonBody))
    async def abandon(request: Request) -> Any:
        """The page gave up on an offer (WebRTC did not connect): end that call, free its place."""
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        call = offered.get(body.get("pc_id")) if isinstance(body.get("pc_id"), str) else None
        if call is None:
            return JSONResponse({"error": "pc_id: no call with this id (it may have ended)"}, 404)
        call.cancel()
        await asyncio.wait([call], timeout=5)  # answered once the place is free
        return {"status": "ended"}

    @router.patch("/api/offer", openapi_extra=_body(_CandidatesBody))
    async def ice_candidates(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        parsed = _parse_patch(body)
        if isinstance(parsed, str):
            return _bad_request(parsed)
        try:
            await handler.handle_patch_request(parsed)
        except HTTPException as error:  # the handler's own refusals (unknown pc_id) are words
            return JSONResponse({"error": str(error.detail)}, error.status_code)
        except Exception as error:  # aiortc could not use a candidate: its text stays in the log
            logger.debug(f"ICE candidates refused: {error.__class__.__name__}: {error}")
            return _bad_request("candidates: aiortc could not use them")
        return {"status": "ok"}

    return router
