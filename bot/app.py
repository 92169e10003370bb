"""create_app(settings) → the bot's one FastAPI app: the page, WebRTC signalling, health."""

from __future__ import annotations

import asyncio
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import aiohttp
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from loguru import logger
from pipecat.transports.smallwebrtc.connection import IceServer
from pipecat.transports.smallwebrtc.request_handler import SmallWebRTCRequestHandler

from bot.calls import CallManager, freeze_startup_objects
from bot.config import Settings
from bot.health import PROBES, llm_model
from bot.metrics import CONTENT_TYPE as METRICS_TYPE
from bot.metrics import EXECUTOR_THREAD_PREFIX
from bot.models import load_speech_model
from bot.options import TTSUnavailable
from bot.transports.twilio import twilio_router
from bot.transports.webrtc import webrtc_router
from bot.transports.websocket import websocket_router

WEBCLIENT = Path(__file__).resolve().parent.parent / "webclient"


def create_app(settings: Settings) -> FastAPI:
    """Build the app. Whisper loads in the background at start-up; /ready says when it is done."""
    calls = CallManager(settings)
    # The page gets the same STUN/TURN servers as the bot (aiortc), from one setting.
    webrtc = SmallWebRTCRequestHandler(
        ice_servers=[IceServer(**server) for server in ice_servers(settings)] or None
    )
    app = FastAPI(title="Off-Grid Voice Kit bot", lifespan=lifespan)
    app.state.calls = calls
    app.state.webrtc = webrtc
    app.mount("/static", StaticFiles(directory=WEBCLIENT / "static"), name="static")
    app.include_router(webrtc_router(calls, webrtc))
    app.include_router(websocket_router(calls))
    app.include_router(twilio_router(calls))
    app.include_router(router)
    return app


def ice_servers(settings: Settings) -> list[dict]:
    """BOT_ICE_SERVERS as plain dicts: the page's RTCPeerConnection and aiortc take the same."""
    return [server.model_dump(exclude_none=True) for server in settings.bot_ice_servers]


@asynccontextmanager
async def lifespan(app: FastAPI):
    """Open the HTTP session, load Whisper and have the LLM read the persona in the background;
    close everything at the end."""
    calls: CallManager = app.state.calls
    # The loop's own default pool names its threads after the loop (asyncio_0, uvloop_0): one
    # of ours, named and bounded alike under any loop, so /metrics can count it apart.
    executor = ThreadPoolExecutor(
        max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix=EXECUTOR_THREAD_PREFIX
    )
    asyncio.get_running_loop().set_default_executor(executor)
    calls.session = aiohttp.ClientSession()
    loading = asyncio.create_task(load_models(calls))
    app.state.loading = loading
    warming = asyncio.create_task(calls.warm_llm())
    try:
        yield
    finally:
        loading.cancel()
        warming.cancel()
        await app.state.webrtc.close()
        await calls.close()


async def load_models(calls: CallManager) -> None:
    """Load Whisper off the event loop; a failure is logged and kept in the task for /ready."""
    try:
        calls.speech = await asyncio.to_thread(load_speech_model, calls.settings)
        freeze_startup_objects()
    # Whisper's loaders fail in many types; whatever it is, /ready reports it from this task.
    except Exception as error:
        logger.error(f"Whisper could not be loaded: {error}")
        logger.opt(exception=error).debug("Whisper's loader failed")
        raise


@functools.cache
def _templates() -> Jinja2Templates:
    return Jinja2Templates(directory=WEBCLIENT / "templates")


def _calls(request: Request) -> CallManager:
    return request.app.state.calls


router = APIRouter()
Calls = Annotated[CallManager, Depends(_calls)]


@router.get("/", response_class=HTMLResponse)
async def page(request: Request, calls: Calls) -> HTMLResponse:
    """The page, with the settings it needs (ICE servers, defaults, limits) filled in."""
    settings = calls.settings
    config = {
        "ice_servers": ice_servers(settings),
        "default_voice": settings.tts_voice,
        "default_language": settings.tts_language,
        "default_prompt": settings.system_prompt,
        "max_prompt_chars": settings.bot_max_prompt_chars,
        "webrtc_timeout_ms": settings.bot_webrtc_timeout_ms,
    }
    return _templates().TemplateResponse(request, "index.html", {"config": config})


@router.get("/api/voices")
async def voices(calls: Calls) -> JSONResponse:
    """The voices and languages a caller can choose (the TTS server's, as Whisper allows)."""
    if calls.speech is None or calls.session is None:
        return JSONResponse({"error": "the bot is still loading"}, status_code=503)
    try:
        catalog = await calls.choices.catalog(calls.session, calls.speech)
    except TTSUnavailable as error:
        return JSONResponse({"error": str(error)}, status_code=503)
    return JSONResponse({"voices": catalog.voices, "languages": catalog.languages})


@router.get("/health")
async def health(calls: Calls) -> dict:
    """Alive, and how full: still loading Whisper or not, calls running or connecting, the
    limit, calls turned away."""
    return {
        "status": "ok",
        "loading": not calls.ready,
        "calls": calls.active,
        "max_calls": calls.places,
        "refused": calls.refused,
    }


@router.get("/metrics")
async def metrics(calls: Calls) -> Response:
    """Prometheus text format: calls, refusals, turn latency per stage, dependency failures."""
    return Response(calls.metrics.render(), media_type=METRICS_TYPE)


@router.get("/ready")
async def ready(request: Request, calls: Calls) -> JSONResponse:
    """200 when Whisper is loaded and the LLM and TTS servers answer; else 503 saying why."""
    settings = calls.settings
    problems: dict[str, str] = {}
    loading: asyncio.Task = request.app.state.loading
    if calls.speech is None:
        failed = loading.done() and not loading.cancelled() and loading.exception()
        problems["stt"] = f"Whisper failed to load: {failed}" if failed else "Whisper loading"
    assert calls.session is not None
    results = await asyncio.gather(*(probe(calls.session, settings) for probe in PROBES.values()))
    problems.update({name: p for name, p in zip(PROBES, results, strict=True) if p})
    body = {
        "ready": not problems,
        "problems": problems,
        "stt": calls.speech.name if calls.speech else None,
        "llm": await llm_model(calls.session, settings),
        "calls": calls.active,
        "max_calls": calls.places,
    }
    return JSONResponse(body, status_code=200 if not problems else 503)
