"""Browser calls over a WebSocket (`/ws`): Pipecat's protobuf frames, for when WebRTC cannot connect.

The socket's first message is a JSON text frame `{"type": "start", "voice", "language", "prompt"}`;
bad choices get `{"type": "error", "error": ...}` and close code 1008 before any pipeline starts;
a bot that is loading or has every place taken closes with 1013 (try again later) and says why.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from loguru import logger
from pipecat.serializers.protobuf import ProtobufFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

from bot.calls import CallManager
from bot.options import BadOptions
from bot.pipeline import audio_params
from bot.replica import others_may_answer

# WebSocket close codes, for both call sockets (/ws and /twilio/ws).
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
_START_TIMEOUT_SECS = 10
# A call socket's largest message, on /ws and /twilio/ws alike: 20 ms of audio or RTVI JSON is
# far smaller. uvicorn refuses a bigger one (close 1009) before reading it (bot/__main__.py).
MAX_MESSAGE_BYTES = 64 * 1024


def websocket_router(calls: CallManager) -> APIRouter:
    router = APIRouter()

    async def refuse(websocket: WebSocket, message: str, code: int = POLICY_VIOLATION) -> None:
        """Tell the caller why, and close: the call does not start."""
        logger.info(f"WebSocket call refused: {message}")
        await websocket.send_json({"type": "error", "error": message})
        await websocket.close(code, reason=message[:120])

    @router.websocket("/ws")
    async def call(websocket: WebSocket) -> None:
        behind_proxy = others_may_answer(websocket)
        if behind_proxy and not calls.ready:
            # Before the upgrade, where the proxy can still hand the call to another replica.
            return await websocket.send_denial_response(
                JSONResponse({"error": "the bot is still loading"}, 503)
            )
        # The place is taken before the upgrade, not at the start message: two sockets arriving
        # together must not both find the last place free (behind the proxy, the second would be
        # refused too late to be handed on).
        admitted = calls.admit()
        if behind_proxy and not admitted:
            return await websocket.send_denial_response(
                JSONResponse({"error": calls.busy_message()}, 503)
            )
        task = None
        try:
            await websocket.accept()
            task = await _started(websocket, admitted)
        finally:
            if admitted and task is None:
                calls.release()
        if task is not None:
            await task  # the socket lives as long as this handler: wait for the call to end

    async def _started(websocket: WebSocket, admitted: bool) -> asyncio.Task | None:
        """The call started on an accepted socket, or None once the caller has been refused."""
        try:
            first = await asyncio.wait_for(websocket.receive_text(), _START_TIMEOUT_SECS)
        except TimeoutError:
            return await refuse(websocket, "start: no start message within 10 seconds")
        except (WebSocketDisconnect, KeyError):  # gone, or a binary frame first
            return await refuse(websocket, "start: the first message must be JSON text")
        if len(first) > MAX_MESSAGE_BYTES:
            return await refuse(websocket, f"start: over {MAX_MESSAGE_BYTES} characters")
        try:
            start = json.loads(first)
        except (ValueError, RecursionError):
            return await refuse(websocket, "start: the first message must be JSON")
        if not isinstance(start, dict) or start.get("type") != "start":
            return await refuse(websocket, 'start: the first message must have "type": "start"')
        if not calls.ready:
            return await refuse(
                websocket, "the bot is still loading; retry shortly", TRY_AGAIN_LATER
            )
        try:
            options = await calls.options({k: v for k, v in start.items() if k != "type"})
        except BadOptions as error:
            return await refuse(websocket, str(error))
        if not admitted:
            return await refuse(websocket, calls.busy_message(), TRY_AGAIN_LATER)
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                **audio_params(),
                serializer=ProtobufFrameSerializer(),
                add_wav_header=False,
            ),
        )
        return calls.start(transport, options, kind="ws")

    return router
