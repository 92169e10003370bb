"""The TTS server's Prometheus metrics (`GET /metrics`): the queue and the synthesis times."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class TTSMetrics:
    """One registry per app, so that two apps in one process (tests) never share counts.

    The queue's gauges are read from `queue_depth` and `busy` at each scrape.
    """

    def __init__(self, *, queue_depth: Callable[[], int], busy: Callable[[], bool]):
        self.registry = registry = CollectorRegistry()
        Gauge(
            "tts_queue_depth",
            "Requests waiting behind the one being synthesized",
            registry=registry,
        ).set_function(queue_depth)
        Gauge("tts_busy", "1 while a request is being synthesized", registry=registry).set_function(
            lambda: int(busy())
        )
        self.requests = Counter(
            "tts_requests",
            "Synthesis requests by route and outcome (done, cancelled, failed)",
            ["route", "outcome"],
            registry=registry,
        )
        self.first_audio = Histogram(
            "tts_first_audio_seconds",
            "From the request's arrival to its first audio, queueing included",
            ["route"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.synthesis = Histogram(
            "tts_synthesis_seconds",
            "From leaving the queue to the last audio",
            ["route"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.skipped = Counter(
            "tts_sentences_skipped", "Sentences the engine failed on, left out", registry=registry
        )

    def finished(
        self,
        route: str,
        outcome: str,
        *,
        first_audio: float | None,
        synthesis: float | None,
        skipped: int,
    ) -> None:
        self.requests.labels(route, outcome).inc()
        if first_audio is not None:
            self.first_audio.labels(route).observe(first_audio)
        if synthesis is not None and outcome == "done":
            self.synthesis.labels(route).observe(synthesis)
        self.skipped.inc(skipped)

    def render(self) -> bytes:
        return generate_latest(self.registry)
