"""The synthesis queue: one engine, one request at a time, audio streamed as it is made."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from xtts.audio import OUTPUT_RATE, StreamResampler, split_sentences, to_pcm16, wav_header
from xtts.engines.base import EngineSetupError, TTSEngine
from xtts.metrics import TTSMetrics
from xtts.schemas import SpeechJob
from xtts.voices import Latents

log = logging.getLogger(__name__)

T = TypeVar("T")


class SynthesisFailed(Exception):
    """The engine produced no audio for a request: the text is one it cannot speak."""


class Synthesizer:
    """Loads the engine and runs requests through it in arrival order.

    One model instance cannot synthesize two requests at once, so requests wait in a FIFO
    queue (asyncio.Lock wakes its waiters in order). The engine itself only ever runs on one
    worker thread, never on the event loop, so /health and queued requests stay responsive.
    """

    def __init__(self, engine: TTSEngine) -> None:
        self.engine = engine
        self.ready = False
        self.load_error: str | None = None
        self._lock = asyncio.Lock()
        self.waiting = 0  # requests queued behind the one being synthesized
        self.metrics = TTSMetrics(queue_depth=lambda: self.waiting, busy=lambda: self.busy)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts-engine")

    async def load(self) -> None:
        """Load the engine off the event loop; records the outcome for /ready, then re-raises."""
        started = time.perf_counter()
        log.info("loading the %s engine", self.engine.name)
        try:
            await asyncio.to_thread(self.engine.load)
            _check_resampling(self.engine)
        # Engines wrap what they foresee in EngineSetupError; a speech package may still raise
        # anything while loading, and /ready must say what (the caller logs it, too).
        except Exception as error:
            self.load_error = (
                str(error)
                if isinstance(error, EngineSetupError)
                else f"the {self.engine.name} engine failed to load: {type(error).__name__}: {error}"
            )
            raise
        self.ready = True
        voices = list(self.engine.voices())
        shown = ", ".join(voices[:5]) + (f" and {len(voices) - 5} more" if len(voices) > 5 else "")
        log.info(
            "%s engine ready in %.1fs: voices %s; languages %s; %d Hz",
            self.engine.name,
            time.perf_counter() - started,
            shown or "none",
            ", ".join(self.engine.languages),
            self.engine.sample_rate,
        )

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def stream(
        self, job: SpeechJob, *, header: bool, route: str, received: float
    ) -> AsyncGenerator[bytes, None]:
        """24 kHz s16le PCM for `job`, chunk by chunk as the engine produces it.

        Cancelling the consumer (a client that hangs up) stops the synthesis at the next chunk
        and hands the engine to the next request in the queue.
        """
        stats = _Stats(route, job, received)
        self.waiting += 1
        try:
            async with self._lock:
                self.waiting -= 1
                stats.dequeued = time.perf_counter()
                pending = wav_header() if header else b""
                resampler = StreamResampler(self.engine.sample_rate, OUTPUT_RATE)
                sentences = split_sentences(job.text, self.engine.sentence_limit(job.language))
                stats.sentences = len(sentences)
                for number, sentence in enumerate(sentences, 1):
                    # A speech package may raise anything on a sentence; it is left out (see
                    # _failed, which logs the cause) and the stream goes on.
                    try:
                        chunks = await self._run(self._start, sentence, job)
                    except Exception as error:
                        self._failed(route, number, error, stats)
                        continue
                    try:
                        while (pcm := await self._run(_next_pcm, chunks, resampler)) is not None:
                            if pcm:
                                stats.audio(len(pcm))
                                yield pending + pcm
                                pending = b""
                    except Exception as error:
                        self._failed(route, number, error, stats)
                    finally:
                        self._close_later(chunks)
                if not stats.audio_bytes:
                    raise SynthesisFailed(
                        f"the {self.engine.name} engine could not speak this text"
                    )
                tail = to_pcm16(resampler.flush())
                if tail or pending:
                    stats.audio(len(tail))
                    yield pending + tail
            stats.outcome = "done"
        except (asyncio.CancelledError, GeneratorExit):
            stats.outcome = "cancelled"
            if stats.dequeued is None:
                self.waiting -= 1  # hung up while still queued
            raise
        except Exception:  # recorded for the log and the metrics, then raised as it was
            stats.outcome = "failed"
            raise
        finally:
            stats.log()
            self.metrics.finished(
                route,
                stats.outcome,
                first_audio=stats.since_received(stats.first_audio),
                synthesis=stats.since(stats.dequeued),
                skipped=stats.skipped,
            )

    @staticmethod
    def _failed(route: str, number: int, error: Exception, stats: _Stats) -> None:
        # One sentence the engine choked on is left out rather than cutting the stream: its
        # 200 and its first audio went out already. With no audio at all the request fails.
        stats.skipped += 1
        log.warning("%s: sentence %d skipped, the engine failed on it", route, number)
        log.debug("%s: the engine's error", route, exc_info=error)

    async def clone(self, wav: bytes) -> Latents:
        """Latents for a reference recording, queued like any synthesis (it uses the model)."""
        async with self._lock:
            return await self._run(self.engine.clone, wav)

    def _start(self, sentence: str, job: SpeechJob) -> Iterator[np.ndarray]:
        # Called on the worker: an engine may do real work before returning its iterator.
        return iter(
            self.engine.synthesize(
                sentence, job.voice, job.language, stream_chunk_size=job.stream_chunk_size
            )
        )

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *args)

    def _close_later(self, chunks: Iterator[np.ndarray]) -> None:
        # On the worker, after any chunk still being computed: closing a generator that another
        # thread is running raises, and the engine's cleanup must not overlap the next request.
        close = getattr(chunks, "close", None)
        if close is not None:
            with contextlib.suppress(RuntimeError):  # the worker is gone at shutdown
                self._worker.submit(close)


def _check_resampling(engine: TTSEngine) -> None:
    """Fail at start-up, not mid-stream, when the engine's rate needs a missing resampler."""
    try:
        StreamResampler(engine.sample_rate, OUTPUT_RATE)
    except ImportError as error:
        raise EngineSetupError(
            f"the {engine.name} engine speaks at {engine.sample_rate} Hz and resampling to "
            f"{OUTPUT_RATE} Hz needs soxr; install it with `uv sync --extra tts`"
        ) from error


def _next_pcm(chunks: Iterator[np.ndarray], resampler: StreamResampler) -> bytes | None:
    """The next engine chunk as 24 kHz PCM (possibly empty), or None when the engine is done."""
    chunk = next(chunks, None)
    if chunk is None:
        return None
    return to_pcm16(resampler.push(chunk))


class _Stats:
    """Timings for the one log line each request gets."""

    def __init__(self, route: str, job: SpeechJob, received: float) -> None:
        self.route, self.job, self.received = route, job, received
        self.dequeued: float | None = None
        self.first_audio: float | None = None
        self.audio_bytes = 0
        self.sentences = 0
        self.skipped = 0
        self.outcome = "failed"

    def since_received(self, moment: float | None) -> float | None:
        return None if moment is None else moment - self.received

    def since(self, moment: float | None) -> float | None:
        return None if moment is None else time.perf_counter() - moment

    def audio(self, size: int) -> None:
        if self.first_audio is None and size:
            self.first_audio = time.perf_counter()
        self.audio_bytes += size

    def log(self) -> None:
        now = time.perf_counter()

        def since(moment: float | None) -> str:
            return f"{moment - self.received:.2f}s" if moment is not None else "-"

        log.info(
            "%s %s: voice=%s language=%s chars=%d sentences=%d skipped=%d queued=%s "
            "first_audio=%s total=%.2fs audio=%.2fs",
            self.route,
            self.outcome,
            self.job.voice.name,
            self.job.language,
            len(self.job.text),
            self.sentences,
            self.skipped,
            since(self.dequeued),
            since(self.first_audio),
            now - self.received,
            self.audio_bytes / (2 * OUTPUT_RATE),
        )
        log.debug("%s text: %r", self.route, self.job.text)
