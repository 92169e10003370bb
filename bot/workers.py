"""Calls in worker processes: a front process takes every request and hands each call to a worker.

Each worker is the whole bot app (`bot/app.py`) on a unix socket, with its own event loop, its own
Whisper and its share of BOT_MAX_CALLS, so calls spread over the cores instead of sharing one
interpreter. The front holds no call's media: WebRTC audio flows between the caller and the
worker's own UDP ports, while the front forwards the signalling (an offer to the worker with the
most free places, its PATCH and DELETE to the same worker by `pc_id`) and relays the WebSocket
calls (`/ws`, and the phone stream at `/twilio/ws/<worker>` that the worker's TwiML names).
Everything else goes to the first worker that is up. A worker that dies ends only its own calls,
and is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from loguru import logger
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bot.config import Settings
from bot.metrics import CONTENT_TYPE as METRICS_TYPE
from bot.transports.webrtc import capped_body
from bot.transports.websocket import POLICY_VIOLATION, TRY_AGAIN_LATER

_RESTART_DELAY_SECS = 1.0
_STOP_GRACE_SECS = 10.0
_PROBE = aiohttp.ClientTimeout(total=2)
# An offer waits for ICE gathering, a DELETE for its call to end: seconds, not minutes.
_FORWARD = aiohttp.ClientTimeout(total=30)
_KEPT_OFFERS = 10_000  # pc_id -> worker entries remembered (a call's PATCHes come within seconds)
# Headers that describe one connection, not the request: never passed through.
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
    "date",
    "server",
}


def shares(total: int, workers: int) -> list[int]:
    """BOT_MAX_CALLS split as evenly as it goes: 5 calls over 2 workers are 3 and 2."""
    return [total // workers + (index < total % workers) for index in range(workers)]


class Worker:
    """One worker process: the bot app on a unix socket."""

    def __init__(self, index: int, places: int, directory: Path):
        self.index = index
        self.places = places
        self.socket = directory / f"worker-{index}.sock"
        self.process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self.pending = 0  # offers sent to it and not yet answered

    @property
    def session(self) -> aiohttp.ClientSession:
        """Requests to this worker's socket (opened in the event loop, on first use)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket))
            )
        return self._session

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def spawn(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "--worker",
            str(self.index),
            "--socket",
            str(self.socket),
            "--places",
            str(self.places),
        )

    async def get(self, path: str) -> tuple[int, str] | None:
        """(status, body) of a GET to the worker; None while it is down or starting."""
        if not self.alive:
            return None
        try:
            async with self.session.get(f"http://worker{path}", timeout=_PROBE) as response:
                return response.status, await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def get_json(self, path: str) -> tuple[int, dict] | None:
        answer = await self.get(path)
        if answer is None:
            return None
        try:
            return answer[0], json.loads(answer[1])
        except ValueError:
            return None


class Workers:
    """The worker processes: started with the front, watched, restarted, stopped with it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.directory = Path(tempfile.mkdtemp(prefix="voice-kit-workers-"))
        places = shares(settings.max_calls, settings.workers)
        self.all = [Worker(index, n, self.directory) for index, n in enumerate(places)]
        self.offers: dict[str, Worker] = {}  # each WebRTC call's worker, by pc_id
        self.registry = CollectorRegistry()
        self.restarts = Counter(
            "kit_worker_restarts",
            "Worker processes started again after they died",
            registry=self.registry,
        )
        self.choosing = asyncio.Lock()  # one offer at a time picks its worker
        self._watchers: list[asyncio.Task] = []
        self._stopping = False

    async def start(self) -> None:
        for worker in self.all:
            await worker.spawn()
            self._watchers.append(asyncio.create_task(self._watch(worker)))
        logger.info(
            f"calls run in {len(self.all)} worker processes "
            f"({', '.join(str(w.places) for w in self.all)} places)"
        )

    async def _watch(self, worker: Worker) -> None:
        while True:
            assert worker.process is not None
            code = await worker.process.wait()
            if self._stopping:
                return
            logger.warning(f"worker {worker.index} exited ({code}); its calls ended; restarting")
            self.restarts.inc()
            self.offers = {pc: w for pc, w in self.offers.items() if w is not worker}
            await asyncio.sleep(_RESTART_DELAY_SECS)
            await worker.spawn()

    async def stop(self) -> None:
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        running = [w.process for w in self.all if w.alive and w.process is not None]
        for process in running:
            process.terminate()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), _STOP_GRACE_SECS)
        except TimeoutError:
            for process in running:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for worker in self.all:
            if worker._session is not None:
                await worker._session.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def first_up(self) -> Worker | None:
        return next((w for w in self.all if w.alive), None)

    async def least_loaded(self) -> Worker | None:
        """The worker with the most free places now (counting offers on their way to it); one
        still loading its models only when no loaded one has room (it would say it is loading,
        which is truer than busy when its places are about to open); the lowest index among
        equals; None when no worker answers."""
        answers = await asyncio.gather(*(w.get_json("/health") for w in self.all))
        best: tuple[tuple[bool, int], Worker] | None = None
        for worker, answer in zip(self.all, answers, strict=True):
            if answer is None or answer[0] != 200:
                continue
            health = answer[1]
            free = health["max_calls"] - health["calls"] - worker.pending
            rank = (free > 0 and not health["loading"], free)
            if best is None or rank > best[0]:
                best = (rank, worker)
        return best[1] if best else None

    def remember(self, pc_id: object, worker: Worker) -> None:
        if isinstance(pc_id, str):
            self.offers[pc_id] = worker
            while len(self.offers) > _KEPT_OFFERS:
                del self.offers[next(iter(self.offers))]


def create_front(settings: Settings) -> FastAPI:
    """The front process's app: the bot's public port, with the calls in `settings.workers`
    worker processes."""
    # No API pages of its own: /openapi.json and /docs come from a worker, bodies and all.
    app = FastAPI(lifespan=_lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.workers = Workers(settings)
    app.add_api_route("/api/offer", offer, methods=["POST"])
    app.add_api_route("/api/offer", to_offers_worker, methods=["PATCH", "DELETE"])
    app.add_api_route("/twilio/voice", twilio_voice, methods=["POST"])
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/ready", ready, methods=["GET"])
    app.add_api_route("/metrics", metrics, methods=["GET"])
    app.add_api_websocket_route("/ws", websocket_call)
    app.add_api_websocket_route("/twilio/ws/{index}", phone_stream)
    app.add_api_route("/{path:path}", to_first_worker, methods=["GET", "HEAD", "POST", "PUT"])
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    workers: Workers = app.state.workers
    await workers.start()
    try:
        yield
    finally:
        await workers.stop()


def _workers(request: Request | WebSocket) -> Workers:
    return request.app.state.workers


_RESTARTING = "the bot is restarting; retry shortly"


def _unavailable() -> JSONResponse:
    return JSONResponse({"error": _RESTARTING}, 503, headers={"Retry-After": "5"})


async def _forward(worker: Worker | None, request: Request, body: bytes | None = None) -> Response:
    """The request as the worker answers it (the caller's Host kept: Twilio's signatures); its
    body is read here unless the caller of this function has read it already."""
    if worker is None:
        return _unavailable()
    if body is None:
        read = await capped_body(request)
        if isinstance(read, Response):
            return read
        body = read
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
    url = f"http://worker{request.url.path}"
    if request.url.query:
        url += f"?{request.url.query}"
    try:
        async with worker.session.request(
            request.method, url, headers=headers, data=body, timeout=_FORWARD
        ) as answer:
            content = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            return Response(content, answer.status, headers=kept)
    except (aiohttp.ClientError, TimeoutError) as error:
        logger.warning(f"worker {worker.index} did not answer {request.url.path}: {error!r}")
        return _unavailable()


async def offer(request: Request) -> Response:
    """A new WebRTC call goes to the worker with the most free places; it answers (or refuses)."""
    workers = _workers(request)
    async with workers.choosing:  # two offers at once must not both count the same place
        worker = await workers.least_loaded()
        if worker is not None:
            worker.pending += 1
    if worker is None:
        return _unavailable()
    try:
        answer = await _forward(worker, request)
    finally:
        worker.pending -= 1
    if answer.status_code == 200:
        with contextlib.suppress(ValueError, AttributeError):
            workers.remember(json.loads(bytes(answer.body)).get("pc_id"), worker)
    return answer


async def to_offers_worker(request: Request) -> Response:
    """ICE candidates and a given-up offer go to the worker that has that pc_id's call; a body
    the front cannot place goes to any worker, which says what is wrong with it."""
    workers = _workers(request)
    body = await capped_body(request)
    if isinstance(body, Response):
        return body
    worker = None
    with contextlib.suppress(ValueError, RecursionError, AttributeError, TypeError):
        worker = workers.offers.get(json.loads(body).get("pc_id"))
    return await _forward(worker or workers.first_up(), request, body)


async def twilio_voice(request: Request) -> Response:
    """The phone webhook: the worker with room answers; its TwiML names its own stream URL."""
    return await _forward(await _workers(request).least_loaded(), request)


async def to_first_worker(request: Request) -> Response:
    """The page, its files, the voices, the API's description: any worker serves them alike."""
    return await _forward(_workers(request).first_up(), request)


async def health(request: Request) -> dict:
    """Alive, and how full, summed over the workers, with each worker's own figures."""
    workers = _workers(request)
    answers = await asyncio.gather(*(w.get_json("/health") for w in workers.all))
    each = []
    for worker, answer in zip(workers.all, answers, strict=True):
        body = answer[1] if answer and answer[0] == 200 else {}
        each.append(
            {
                "worker": worker.index,
                "pid": worker.process.pid if worker.process else None,
                "up": bool(body),
                "loading": body.get("loading", True),
                "calls": body.get("calls", 0),
                "max_calls": worker.places,
                "refused": body.get("refused", 0),
            }
        )
    return {
        "status": "ok",
        "loading": all(w["loading"] for w in each),  # no worker can take a call yet
        "calls": sum(w["calls"] for w in each),
        "max_calls": workers.settings.max_calls,
        "refused": sum(w["refused"] for w in each),
        "workers": each,
    }


async def ready(request: Request) -> JSONResponse:
    """200 when every worker is ready; else 503 naming each worker's problems."""
    workers = _workers(request)
    answers = await asyncio.gather(*(w.get_json("/ready") for w in workers.all))
    problems: dict[str, str] = {}
    stt = None
    calls = 0
    for worker, answer in zip(workers.all, answers, strict=True):
        if answer is None:
            problems[f"worker {worker.index}"] = "starting or restarting"
            continue
        body = answer[1]
        stt = stt or body.get("stt")
        calls += body.get("calls", 0)
        for name, problem in body.get("problems", {}).items():
            problems[f"worker {worker.index}: {name}"] = problem
    body = {
        "ready": not problems,
        "problems": problems,
        "stt": stt,
        "calls": calls,
        "max_calls": workers.settings.max_calls,
        "workers": len(workers.all),
    }
    return JSONResponse(body, status_code=200 if not problems else 503)


async def metrics(request: Request) -> Response:
    """Every worker's metrics with a `worker` label, and the front's own (restarts)."""
    workers = _workers(request)
    answers = await asyncio.gather(*(w.get("/metrics") for w in workers.all))
    families: dict[str, Metric] = {}
    for worker, answer in zip(workers.all, answers, strict=True):
        page = answer[1] if answer and answer[0] == 200 else ""
        for family in text_string_to_metric_families(page):
            merged = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            label = {"worker": str(worker.index)}
            merged.samples += [s._replace(labels={**s.labels, **label}) for s in family.samples]
    for family in workers.registry.collect():
        families[family.name] = family
    registry = CollectorRegistry()
    registry.register(_Collected(list(families.values())))
    return Response(generate_latest(registry), media_type=METRICS_TYPE)


class _Collected:
    """Metric families gathered already, served as a collector of their own."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


async def websocket_call(websocket: WebSocket) -> None:
    workers = _workers(websocket)
    await _relay(websocket, await workers.least_loaded(), "/ws")


async def phone_stream(websocket: WebSocket, index: int) -> None:
    workers = _workers(websocket)
    worker = workers.all[index] if 0 <= index < len(workers.all) else None
    await _relay(websocket, worker, f"/twilio/ws/{index}")


async def _relay(client: WebSocket, worker: Worker | None, path: str) -> None:
    """The caller's socket joined to the worker's, frame by frame, close codes and reasons
    included. A worker that refuses the upgrade (a bad Twilio signature) gets the caller the
    same refusal, before the socket is accepted."""
    if worker is None or not worker.alive:
        await client.accept()
        return await client.close(TRY_AGAIN_LATER, reason=_RESTARTING)
    headers = {
        k: v
        for k, v in client.headers.items()
        if k.lower() in ("host", "origin", "user-agent", "x-twilio-signature")
    }
    try:
        upstream = await worker.session.ws_connect(
            f"http://worker{path}", headers=headers, max_msg_size=0
        )
    except aiohttp.WSServerHandshakeError:
        return await client.close(POLICY_VIOLATION)  # not accepted: the caller gets the 403
    except (aiohttp.ClientError, TimeoutError):
        await client.accept()
        return await client.close(TRY_AGAIN_LATER, reason=_RESTARTING)
    await client.accept()
    async with upstream:
        up = asyncio.create_task(_caller_to_worker(client, upstream))
        down = asyncio.create_task(_worker_to_caller(upstream, client))
        _, still = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in still:
            task.cancel()
        await asyncio.gather(*still, return_exceptions=True)


async def _caller_to_worker(client: WebSocket, upstream: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = await client.receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close(code=message.get("code") or 1000)
            return
        if message.get("text") is not None:
            await upstream.send_str(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send_bytes(message["bytes"])


async def _worker_to_caller(upstream: aiohttp.ClientWebSocketResponse, client: WebSocket) -> None:
    while True:
        message = await upstream.receive()
        if message.type == aiohttp.WSMsgType.TEXT:
            await client.send_text(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await client.send_bytes(message.data)
        else:  # closed by the worker (its code and reason), or the worker went away
            code = upstream.close_code or 1011
            reason = message.extra if isinstance(message.extra, str) else ""
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await client.close(code, reason=reason)
            return


def exit_with_parent() -> None:
    """In a worker: stop (gracefully, as on SIGTERM) when the front process is gone, so that a
    killed front leaves no worker holding its calls' ports."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="kit-parent-watch", daemon=True).start()
