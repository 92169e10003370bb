"""The HTTP API: coqui's xtts-streaming-server routes, plus /health and /ready."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from xtts import __version__
from xtts.audio import OUTPUT_RATE, wav_file
from xtts.config import Settings
from xtts.engines.base import TTSEngine, create_engine
from xtts.engines.choice import choose_engine
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

    `engine` replaces the one TTS_ENGINE picks (the command line, which chose it already; tests);
    `on_load_failure` is called if loading fails (the command line uses it to stop the server).
    Raises InvalidEngineSetting when TTS_ENGINE picks no engine that can start.
    """
    if engine is None:
        engine = create_engine(choose_engine(settings).name, settings)
    server = Server(settings, Synthesizer(engine))
    app = FastAPI(
        title="XTTS-compatible TTS server",
        version=__version__,
        lifespan=functools.partial(_lifespan, server=server, on_load_failure=on_load_failure),
        docs_url="/docs",
    )
    app.state.server = server
    app.state.synthesizer = server.synthesizer
    _install_error_handlers(app)
    app.include_router(router)
    return app


class Server:
    """What every route shares: the settings and the synthesis queue with its engine."""

    def __init__(self, settings: Settings, synthesizer: Synthesizer) -> None:
        self.settings = settings
        self.synthesizer = synthesizer
        self.engine = synthesizer.engine

    def require_ready(self) -> None:
        """Raise a 503 (saying why) until the engine is loaded."""
        if not self.synthesizer.ready:
            raise ApiError(503, _not_ready_message(self.synthesizer))

    @functools.cached_property
    def speakers_json(self) -> bytes:
        """Every voice's latents as JSON; built once: for XTTS's speaker file it is megabytes."""
        voices = {name: latents.to_json() for name, latents in self.engine.voices().items()}
        return json.dumps(voices, separators=(",", ":")).encode()


@asynccontextmanager
async def _lifespan(
    _: FastAPI, *, server: Server, on_load_failure: Callable[[BaseException], None] | None
) -> AsyncIterator[None]:
    # Loading takes seconds to minutes; doing it in the background lets /health answer at once
    # and /ready report progress.
    task = asyncio.create_task(_load(server.synthesizer, on_load_failure))
    try:
        yield
    finally:
        task.cancel()
        server.synthesizer.close()


async def _load(
    synthesizer: Synthesizer, on_load_failure: Callable[[BaseException], None] | None
) -> None:
    """Load the engine; a failure is logged, kept for /ready and handed to `on_load_failure`."""
    try:
        await synthesizer.load()
    except Exception as error:  # an engine may raise anything; Synthesizer.load put it in words
        log.error("cannot start: %s", synthesizer.load_error)
        log.debug("the engine's load failed", exc_info=error)
        if on_load_failure is not None:
            on_load_failure(error)


def _server(request: Request) -> Server:
    return request.app.state.server


class _RustJSONRequest(Request):
    """A request whose JSON body pydantic's parser reads. A /tts_stream body carries a voice's
    ~33,000 latent numbers, which take the standard library ~5.5 ms to read and pydantic ~1.2 ms,
    on the way to every sentence's first audio."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body)
            except ValueError as error:  # FastAPI answers this one with its 422
                raise json.JSONDecodeError(str(error), body.decode(errors="replace"), 0) from None
        return self._json


class _RustJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handle(_RustJSONRequest(request.scope, request.receive))

        return route


router = APIRouter(route_class=_RustJSONRoute)
ServerDep = Annotated[Server, Depends(_server)]


@router.get("/health")
async def health() -> dict[str, str]:
    """Alive (the engine may still be loading; see /ready)."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(server: ServerDep) -> JSONResponse:
    """200 once the engine is loaded and requests will be served, 503 until then.

    `busy` tells whether a request is being synthesized right now, `queued` how many wait.
    """
    synthesizer, engine = server.synthesizer, server.engine
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


@router.get("/metrics")
async def metrics(server: ServerDep) -> Response:
    """Prometheus text format: queue depth, requests, first-audio and synthesis times."""
    return Response(server.synthesizer.metrics.render(), media_type=METRICS_TYPE)


@router.get("/studio_speakers")
async def studio_speakers(server: ServerDep) -> Response:
    """Each voice's latents; send them back with /tts_stream to pick that voice."""
    server.require_ready()
    # Off the event loop: the first call encodes every voice's latents.
    body = await asyncio.to_thread(lambda: server.speakers_json)
    return Response(body, media_type="application/json")


@router.get("/languages")
async def languages(server: ServerDep) -> list[str]:
    """The language codes the engine speaks."""
    server.require_ready()
    return list(server.engine.languages)


@router.post("/tts_stream")
async def tts_stream(body: StreamBody, server: ServerDep) -> StreamingResponse:
    """Raw s16le mono 24 kHz PCM (after a WAV header if add_wav_header), as it is made."""
    received = time.perf_counter()
    server.require_ready()
    job = check_speech(body, server.engine, server.settings.tts_max_text_chars)
    audio = server.synthesizer.stream(
        job, header=body.add_wav_header, route="tts_stream", received=received
    )
    # The first audio is made before the 200: text the engine cannot speak gets a 422.
    first = await _first_audio(audio)
    media_type = "audio/wav" if body.add_wav_header else "audio/raw"
    return _ClosingStreamingResponse(_chain(first, audio), media_type=media_type)


@router.post("/tts")
async def tts(body: SpeechBody, server: ServerDep) -> Response:
    """The whole utterance as one WAV file."""
    received = time.perf_counter()
    server.require_ready()
    job = check_speech(body, server.engine, server.settings.tts_max_text_chars)
    pcm = bytearray()
    try:
        async for chunk in server.synthesizer.stream(
            job, header=False, route="tts", received=received
        ):
            pcm += chunk
    except SynthesisFailed as error:
        raise ApiError(422, f"text: {error}") from None
    return Response(wav_file(bytes(pcm)), media_type="audio/wav")


@router.post("/clone_speaker")
async def clone_speaker(request: Request, server: ServerDep) -> dict[str, Any]:
    """Latents for the speaker in an uploaded recording (multipart field `wav_file`)."""
    server.require_ready()
    if not server.engine.can_clone:
        raise ApiError(
            501,
            f"the {server.engine.name} engine cannot clone voices; use a voice from "
            "/studio_speakers, or run TTS_ENGINE=xtts",
        )
    wav = await _read_upload(request)
    latents = await server.synthesizer.clone(wav)
    return latents.to_json()


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
    except (StarletteHTTPException, MultiPartException, ClientDisconnect, ValueError) as error:
        # Starlette's own refusals, a client gone mid-upload, python-multipart's parse errors.
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
