"""create_app(settings) → the bot's one FastAPI app: the page, WebRTC signalling, health."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from loguru import logger
from pipecat.transports.smallwebrtc.request_handler import SmallWebRTCRequestHandler

from bot.calls import CallManager
from bot.config import Settings
from bot.health import PROBES
from bot.models import load_speech_model
from bot.transports.webrtc import webrtc_router

WEBCLIENT = Path(__file__).resolve().parent.parent / "webclient"


def create_app(settings: Settings) -> FastAPI:
    """Build the app. Whisper loads in the background at start-up; /ready says when it is done."""
    calls = CallManager(settings)
    webrtc = SmallWebRTCRequestHandler()
    templates = Jinja2Templates(directory=WEBCLIENT / "templates")

    async def load_models() -> None:
        try:
            calls.speech = await asyncio.to_thread(load_speech_model, settings)
        except Exception as error:
            logger.error(f"Whisper could not be loaded: {error}")
            raise

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        calls.session = aiohttp.ClientSession()
        loading = asyncio.create_task(load_models())
        app.state.loading = loading
        try:
            yield
        finally:
            loading.cancel()
            await webrtc.close()
            await calls.close()

    app = FastAPI(title="Off-Grid Voice Kit bot", lifespan=lifespan)
    app.state.calls = calls
    app.mount("/static", StaticFiles(directory=WEBCLIENT / "static"), name="static")
    app.include_router(webrtc_router(calls, webrtc))

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(
            request, "index.html", {"voice": settings.tts_voice, "language": settings.tts_language}
        )

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "calls": len(calls.tasks)}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """200 when Whisper is loaded and the LLM and TTS servers answer; else 503 saying why."""
        problems: dict[str, str] = {}
        loading: asyncio.Task = app.state.loading
        if calls.speech is None:
            failed = loading.done() and not loading.cancelled() and loading.exception()
            problems["stt"] = f"Whisper failed to load: {failed}" if failed else "Whisper loading"
        assert calls.session is not None
        results = await asyncio.gather(
            *(probe(calls.session, settings) for probe in PROBES.values())
        )
        problems.update({name: p for name, p in zip(PROBES, results, strict=True) if p})
        body = {
            "ready": not problems,
            "problems": problems,
            "stt": calls.speech.name if calls.speech else None,
            "calls": len(calls.tasks),
        }
        return JSONResponse(body, status_code=200 if not problems else 503)

    return app
