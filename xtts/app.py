"""The HTTP API: coqui's xtts-streaming-server routes, plus /health and /ready."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from xtts import __version__
from xtts.audio import OUTPUT_RATE, wav_file
from xtts.config import Settings
from xtts.engines.base import TTSEngine, create_engine
from xtts.metrics import CONTENT_TYPE as METRICS_TYPE
from xtts.schemas import ApiError, SpeechBody, StreamBody, check_speech, describe_validation
from xtts.synthesis import SynthesisFailed, Synthesizer

log = logging.getLogger(__name__)

# Reference recordings for /clone_speaker are seconds long; this is far beyond any of them.
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class _ClosingStreamingResponse(StreamingResponse):
    """Closes its body generator however the response ends.

    When a client hangs up while the generator waits at a `yield`, Starlette abandons it
    without closing it; its cleanup (freeing the synthesis queue) would then wait for garbage
    collection. Closing it here makes that immediate.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


def create_app(
    settings: Settings,
    *,
    engine: TTSEngine | None = None,
    on_load_failure: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """Build the app. The engine loads in the background once the server starts.

    `engine` replaces the one TTS_ENGINE names (tests); `on_load_failure` is called if loading
    fails (the command line uses it to stop the server).
    """
    synthesizer = Synthesizer(engine or create_engine(settings))
    engine = synthesizer.engine

    async def load() -> None:
        try:
            await synthesizer.load()
        except Exception as error:
            log.error("cannot start: %s", synthesizer.load_error)
            if on_load_failure is not None:
                on_load_failure(error)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Loading takes seconds to minutes; doing it in the background lets /health answer
        # at once and /ready report progress.
        task = asyncio.create_task(load())
        try:
            yield
        finally:
            task.cancel()
            synthesizer.close()

    app = FastAPI(
        title="XTTS-compatible TTS server",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
    )
    app.state.synthesizer = synthesizer
    _install_error_handlers(app)

    @functools.cache
    def speakers_json() -> bytes:
        # Built once: for XTTS's speaker file this is megabytes of JSON.
        voices = {name: latents.to_json() for name, latents in engine.voices().items()}
        return json.dumps(voices, separators=(",", ":")).encode()

    def require_ready() -> None:
        if not synthesizer.ready:
            raise ApiError(503, _not_ready_message(synthesizer))

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Alive (the engine may still be loading; see /ready)."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """200 once the engine is loaded and requests will be served, 503 until then.

        `busy` tells whether a request is being synthesized right now, `queued` how many wait.
        """
        if not synthesizer.ready:
            status = "failed" if synthesizer.load_error else "loading"
            return JSONResponse(
                {"status": status, "engine": engine.name, "error": _not_ready_message(synthesizer)},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        return JSONResponse(
            {
                "status": "ready",
                "engine": engine.name,
                "voices": list(engine.voices()),
                "languages": list(engine.languages),
                "sample_rate": OUTPUT_RATE,
                "busy": synthesizer.busy,
                "queued": synthesizer.waiting,
            }
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text format: queue depth, requests, first-audio and synthesis times."""
        return Response(synthesizer.metrics.render(), media_type=METRICS_TYPE)

    @app.get("/studio_speakers")
    async def studio_speakers() -> Response:
        """Each voice's latents; send them back with /tts_stream to pick that voice."""
        require_ready()
        # Off the event loop: the first call encodes every voice's latents.
        body = await asyncio.to_thread(speakers_json)
        return Response(body, media_type="application/json")

    @app.get("/languages")
    async def languages() -> list[str]:
        """The language codes the engine speaks."""
        require_ready()
        return list(engine.languages)

    @app.post("/tts_stream")
    async def tts_stream(body: StreamBody) -> StreamingResponse:
        """Raw s16le mono 24 kHz PCM (after a WAV header if add_wav_header), as it is made."""
        received = time.perf_counter()
        require_ready()
        job = check_speech(body, engine, settings.tts_max_text_chars)
        audio = synthesizer.stream(
            job, header=body.add_wav_header, route="tts_stream", received=received
        )
        # The first audio is made before the 200: text the engine cannot speak gets a 422.
        first = await _first_audio(audio)
        media_type = "audio/wav" if body.add_wav_header else "audio/raw"
        return _ClosingStreamingResponse(_chain(first, audio), media_type=media_type)

    @app.post("/tts")
    async def tts(body: SpeechBody) -> Response:
        """The whole utterance as one WAV file."""
        received = time.perf_counter()
        require_ready()
        job = check_speech(body, engine, settings.tts_max_text_chars)
        pcm = bytearray()
        try:
            async for chunk in synthesizer.stream(
                job, header=False, route="tts", received=received
            ):
                pcm += chunk
        except SynthesisFailed as error:
            raise ApiError(422, f"text: {error}") from None
        return Response(wav_file(bytes(pcm)), media_type="audio/wav")

    @app.post("/clone_speaker")
    async def clone_speaker(request: Request) -> dict[str, Any]:
        """Latents for the speaker in an uploaded recording (multipart field `wav_file`)."""
        require_ready()
        if not engine.can_clone:
            raise ApiError(
                501,
                f"the {engine.name} engine cannot clone voices; use a voice from "
                "/studio_speakers, or run TTS_ENGINE=xtts",
            )
        wav = await _read_upload(request)
        latents = await synthesizer.clone(wav)
        return latents.to_json()

    return app


async def _first_audio(audio: AsyncGenerator[bytes, None]) -> bytes:
    try:
        return await anext(audio)
    except SynthesisFailed as error:
        raise ApiError(422, f"text: {error}") from None


async def _chain(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()  # frees the synthesis queue at once when the client hangs up


def _not_ready_message(synthesizer: Synthesizer) -> str:
    if synthesizer.load_error:
        return synthesizer.load_error
    return f"the {synthesizer.engine.name} engine is still loading; retry when /ready answers 200"


async def _read_upload(request: Request) -> bytes:
    too_big = ApiError(413, f"wav_file: larger than {MAX_UPLOAD_BYTES // 2**20} MB")
    if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES:
        raise too_big
    try:
        form = await request.form()
    except AssertionError as error:
        # Starlette parses multipart only with python-multipart installed.
        raise ApiError(501, f"clone_speaker is unavailable on this server: {error}") from error
    except Exception as error:
        raise ApiError(400, f"wav_file: could not read the upload ({error})") from error
    upload = form.get("wav_file")
    if upload is None or isinstance(upload, str):
        raise ApiError(400, "wav_file: required, as a multipart file upload")
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_big
    if not data:
        raise ApiError(400, "wav_file: the uploaded file is empty")
    return data


def _install_error_handlers(app: FastAPI) -> None:
    """Every error, ours or the framework's, comes out as `{"error": "<plain words>"}`."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        headers = {"Retry-After": "1"} if error.status == 503 else None
        return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": describe_validation(list(error.errors()))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 404:
            message = f"no such route: {request.method} {request.url.path}"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse(
            {"error": message}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the details stay in the server's log
        return JSONResponse({"error": "internal error; the server log has the details"}, 500)
