"""Browser calls over WebRTC: SmallWebRTC signalling on `/api/offer`, one pipeline per peer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
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

from bot.calls import CallManager
from bot.options import BadOptions, CallOptions
from bot.pipeline import transport_params


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def _json_object(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        body = await request.json()
    except ValueError:
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
        parsed.append(
            IceCandidate(
                c["candidate"], c.get("sdp_mid") or "0", int(c.get("sdp_mline_index") or 0)
            )
        )
    return SmallWebRTCPatchRequest(pc_id=body["pc_id"], candidates=parsed)


def webrtc_router(calls: CallManager, handler: SmallWebRTCRequestHandler) -> APIRouter:
    router = APIRouter()

    def call_starter(options: CallOptions):
        async def start_call(connection: SmallWebRTCConnection) -> None:
            transport = SmallWebRTCTransport(
                webrtc_connection=connection, params=transport_params(calls.settings)
            )
            calls.start(transport, options, kind="webrtc")

        return start_call

    @router.post("/api/offer")
    async def offer(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        parsed = _parse_offer(body)
        if isinstance(parsed, str):
            return _bad_request(parsed)
        if not calls.ready:
            return JSONResponse({"error": "the bot is still loading; retry shortly"}, 503)
        try:
            options = await calls.options(parsed.request_data)
        except BadOptions as error:
            return _bad_request(str(error))
        try:
            return await handler.handle_web_request(parsed, call_starter(options))
        except Exception as error:
            logger.info(f"WebRTC offer refused: {error.__class__.__name__}: {error}")
            return _bad_request(f"the offer could not be used: {error}")

    @router.patch("/api/offer")
    async def ice_candidates(request: Request) -> Any:
        body = await _json_object(request)
        if isinstance(body, JSONResponse):
            return body
        parsed = _parse_patch(body)
        if isinstance(parsed, str):
            return _bad_request(parsed)
        try:
            await handler.handle_patch_request(parsed)
        except Exception as error:
            status = getattr(error, "status_code", 400)
            return JSONResponse({"error": getattr(error, "detail", str(error))}, status)
        return {"status": "ok"}

    return router
