"""The HTTP layer and the synthesis queue, served by uvicorn, with a scripted engine.

The engine here blocks on events the test controls, which makes streaming, queue order and
hang-ups deterministic: no sleeps, no timing assertions.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import uvicorn

from tests.support import free_port, metric
from xtts.app import create_app
from xtts.config import Settings
from xtts.engines.base import EngineSetupError
from xtts.voices import Latents, Voice, VoiceBook, named_latents

CHUNK_SAMPLES = 2400  # 0.1 s at 24 kHz
CHUNK_BYTES = CHUNK_SAMPLES * 2
WAIT = 20  # seconds; only a safety net against hangs, never an assertion


class ScriptedEngine:
    """A 24 kHz engine whose loading and sentences wait for the test's go-ahead."""

    name = "scripted"
    can_clone = False
    default_voice = "test"
    sample_rate = 24000
    languages = ["en"]  # noqa: RUF012

    def __init__(self, *, load_error: Exception | None = None) -> None:
        self.book = VoiceBook(["test"])
        self.loaded = threading.Event()
        self.load_error = load_error
        self.gates: dict[str, threading.Event] = {}
        self.started: list[str] = []
        self.closed: list[str] = []
        self.failing: set[str] = set()  # sentences the engine raises on, as a real one may
        self.lock = threading.Lock()

    def gate(self, sentence: str) -> threading.Event:
        return self.gates.setdefault(sentence, threading.Event())

    def load(self) -> None:
        assert self.loaded.wait(WAIT)
        if self.load_error:
            raise self.load_error

    def voices(self) -> dict[str, Latents]:
        return self.book.latents()

    def resolve_voice(self, latents: Latents) -> Voice | None:
        return self.book.match(latents)

    def sentence_limit(self, language: str) -> int:
        return 250

    def synthesize(self, text: str, voice: Voice, language: str, **_: Any) -> Iterator[np.ndarray]:
        self.started.append(text)
        try:
            if text in self.gates:
                assert self.gates[text].wait(WAIT), f"gate for {text!r} never opened"
            if text in self.failing:
                raise IndexError("list index out of range")  # what hibari raised on long numbers
            yield np.full(CHUNK_SAMPLES, 0.25, dtype=np.float32)
        finally:
            self.closed.append(text)

    def clone(self, wav: bytes) -> Latents:
        raise NotImplementedError


@contextlib.contextmanager
def serve(engine: ScriptedEngine, **settings: Any) -> Iterator[httpx.Client]:
    """The app under a real uvicorn in a thread; yields a client bound to it."""
    failures: list[BaseException] = []
    app = create_app(
        Settings(_env_file=None, **settings), engine=engine, on_load_failure=failures.append
    )
    app.state.load_failures = failures
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
    finally:
        for gate in engine.gates.values():
            gate.set()
        engine.loaded.set()
        server.should_exit = True
        thread.join(WAIT)


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def ready(client: httpx.Client) -> httpx.Client:
    client.app.state.synthesizer.engine.loaded.set()  # type: ignore[attr-defined]
    wait_until(lambda: client.get("/ready").status_code == 200, "/ready")
    return client


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "text": text,
        "language": "en",
        **VoiceBook(["test"]).latents()["test"].to_json(),
        **extra,
    }


def test_health_answers_while_loading_and_ready_only_after():
    engine = ScriptedEngine()
    with serve(engine) as client:
        assert client.get("/health").json() == {"status": "ok"}
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["status"] == "loading"
        assert "still loading" in response.json()["error"]
        refused = client.post("/tts_stream", json=body("Hello."))
        assert refused.status_code == 503 and "still loading" in refused.json()["error"]
        assert client.get("/studio_speakers").status_code == 503

        engine.loaded.set()
        wait_until(lambda: client.get("/ready").status_code == 200, "/ready")
        info = client.get("/ready").json()
        assert (info["engine"], info["voices"], info["languages"]) == ("scripted", ["test"], ["en"])


def test_a_failed_load_is_reported_and_signalled():
    engine = ScriptedEngine(load_error=EngineSetupError("TTS_VOICE: no such voice"))
    with serve(engine) as client:
        engine.loaded.set()
        wait_until(lambda: client.get("/ready").json()["status"] == "failed", "the failure")
        assert client.get("/ready").json()["error"] == "TTS_VOICE: no such voice"
        assert client.get("/health").status_code == 200
        assert [str(error) for error in client.app.state.load_failures] == [  # type: ignore[attr-defined]
            "TTS_VOICE: no such voice"
        ]


def test_audio_streams_before_the_last_sentence_is_synthesized():
    engine = ScriptedEngine()
    last = engine.gate("Three.")
    with serve(engine) as client:
        ready(client)
        with client.stream(
            "POST", "/tts_stream", json=body("One. Two. Three.", add_wav_header=False)
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "audio/raw"
            chunks = response.iter_raw()
            received = next(chunks)
            # The last sentence cannot have been synthesized: it waits for this go-ahead.
            assert not last.is_set()
            assert 0 < len(received) < 3 * CHUNK_BYTES
            last.set()
            received += b"".join(chunks)
        assert len(received) == 3 * CHUNK_BYTES
        assert engine.started == ["One.", "Two.", "Three."]


def test_wav_header_comes_first_when_asked_for():
    engine = ScriptedEngine()
    with serve(engine) as client:
        ready(client)
        response = client.post("/tts_stream", json=body("One."))  # add_wav_header defaults to true
        assert response.headers["content-type"] == "audio/wav"
        assert response.content[:4] == b"RIFF"
        assert len(response.content) == 44 + CHUNK_BYTES
        whole = client.post("/tts", json=body("One. Two."))
        assert whole.headers["content-type"] == "audio/wav"
        assert int.from_bytes(whole.content[40:44], "little") == 2 * CHUNK_BYTES


def test_concurrent_requests_are_served_one_at_a_time_in_arrival_order():
    engine = ScriptedEngine()
    first = engine.gate("First.")
    with serve(engine) as client, ThreadPoolExecutor(3) as pool:
        ready(client)
        # Headers come with the first audio: each request is sent once the one before it has
        # reached the engine or the queue.
        responses = [pool.submit(client.post, "/tts_stream", json=body("First."))]
        wait_until(lambda: engine.started == ["First."], "the first request to start")
        for queued, text in enumerate(("Second.", "Third."), 1):
            responses.append(pool.submit(client.post, "/tts_stream", json=body(text)))
            wait_until(lambda n=queued: client.get("/ready").json()["queued"] == n, text)
        page = client.get("/metrics").text
        assert (metric(page, "tts_queue_depth"), metric(page, "tts_busy")) == (2, 1)
        first.set()
        bodies = [future.result().content for future in responses]
        assert engine.started == ["First.", "Second.", "Third."]
        assert [len(audio) for audio in bodies] == [44 + CHUNK_BYTES] * 3
        assert client.get("/ready").json()["queued"] == 0
        page = client.get("/metrics").text
        assert metric(page, "tts_queue_depth") == 0
        assert metric(page, "tts_requests_total", route="tts_stream", outcome="done") == 3
        assert metric(page, "tts_first_audio_seconds_count", route="tts_stream") == 3
        assert metric(page, "tts_synthesis_seconds_count", route="tts_stream") == 3


def test_a_client_that_hangs_up_stops_its_synthesis_and_frees_the_queue():
    engine = ScriptedEngine()
    second = engine.gate("Second part.")
    with serve(engine) as client:
        ready(client)
        with client.stream(
            "POST", "/tts_stream", json=body("First part. Second part. Third part.")
        ) as response:
            chunks = response.iter_raw()  # kept: dropping it would close the response early
            next(chunks)  # the first sentence's audio
            wait_until(lambda: len(engine.started) == 2, "the second sentence to start")
        # The response is closed with the second sentence still being synthesized.
        wait_until(lambda: not client.get("/ready").json()["busy"], "the queue to be released")
        # The next request queues behind the abandoned sentence still on the engine thread (its
        # 200 waits for its first audio, so it is sent from another thread) ...
        with ThreadPoolExecutor(1) as pool:
            after = pool.submit(
                client.post, "/tts_stream", json=body("Next.", add_wav_header=False)
            )
            wait_until(lambda: client.get("/ready").json()["busy"], "the next request")
            assert engine.started == ["First part.", "Second part."]
            second.set()
            # ...and completes once that sentence ends; the abandoned request never resumes.
            response = after.result(WAIT)
        assert response.status_code == 200
        assert len(response.content) == CHUNK_BYTES
        assert engine.started == ["First part.", "Second part.", "Next."]
        assert "Second part." in engine.closed


class CloningEngine(ScriptedEngine):
    can_clone = True

    def clone(self, wav: bytes) -> Latents:
        self.cloned = wav
        return named_latents("cloned")


def test_clone_speaker_hands_the_upload_to_an_engine_that_can_clone():
    engine = CloningEngine()
    with serve(engine) as client:
        ready(client)
        response = client.post("/clone_speaker", files={"wav_file": ("me.wav", b"RIFF-me")})
    if importlib.util.find_spec("python_multipart") is None:
        # Starlette parses uploads only with python-multipart installed.
        assert response.status_code == 501
        assert "python-multipart" in response.json()["error"]
    else:
        assert response.status_code == 200
        assert engine.cloned == b"RIFF-me"
        assert len(response.json()["speaker_embedding"]) == 512
        assert len(response.json()["gpt_cond_latent"]) == 32


def test_clone_speaker_is_refused_by_an_engine_that_cannot_clone():
    with serve(ScriptedEngine()) as client:
        ready(client)
        response = client.post("/clone_speaker", files={"wav_file": ("me.wav", b"RIFF-me")})
    assert response.status_code == 501
    assert response.json() == {
        "error": "the scripted engine cannot clone voices; use a voice from /studio_speakers, "
        "or run TTS_ENGINE=xtts"
    }


def test_unknown_routes_and_methods_answer_in_json():
    with serve(ScriptedEngine()) as client:
        assert client.get("/nowhere").json() == {"error": "no such route: GET /nowhere"}
        response = client.get("/tts_stream")
        assert response.status_code == 405
        assert response.json() == {"error": "GET is not allowed on /tts_stream"}


def test_text_the_engine_fails_on_is_a_422_before_any_audio_and_says_no_internals():
    engine = ScriptedEngine()
    engine.failing = {"Broken."}
    with serve(engine) as client:
        ready(client)
        for route in ("/tts_stream", "/tts"):
            response = client.post(route, json=body("Broken."))
            assert response.status_code == 422, route
            assert response.json() == {
                "error": "text: the scripted engine could not speak this text"
            }
        assert client.post("/tts", json=body("One.")).status_code == 200  # the queue is free


def test_a_sentence_the_engine_fails_on_mid_stream_is_left_out_and_the_stream_completes():
    engine = ScriptedEngine()
    engine.failing = {"Two."}
    with serve(engine) as client:
        ready(client)
        response = client.post("/tts_stream", json=body("One. Two. Three.", add_wav_header=False))
        assert response.status_code == 200
        assert len(response.content) == 2 * CHUNK_BYTES  # whole: the stream was not cut
        assert engine.started == ["One.", "Two.", "Three."]
        assert metric(client.get("/metrics").text, "tts_sentences_skipped_total") == 1


def test_text_with_nothing_to_say_is_refused_and_odd_characters_are_cleaned():
    engine = ScriptedEngine()
    with serve(engine) as client:
        ready(client)
        for text in ("😀😀", "\x01\x02", "... ?!", "\u200b"):
            response = client.post("/tts_stream", json=body(text))
            assert response.status_code == 422, text
            assert response.json()["error"] == (
                "text: has nothing to speak: no letter or digit, only symbols or emoji"
            ), text
        assert client.post("/tts", json=body("Hi\x00 there\u200d.")).status_code == 200
        assert engine.started == ["Hi  there."]
