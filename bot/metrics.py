"""The bot's Prometheus metrics (`GET /metrics`): calls, turn latency per stage, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from bot.latency import STAGES, TurnLatency

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The bot's default executor names its threads so (`bot.app.lifespan`), whichever event loop runs.
EXECUTOR_THREAD_PREFIX = "kit-executor"
# Voice-to-voice lives between a few hundred milliseconds and a few seconds.
_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


class BotMetrics:
    """One registry per app, so that two apps in one process (tests) never share counts."""

    def __init__(self, calls_active: Callable[[], int], max_calls: int):
        self.registry = registry = CollectorRegistry()
        Gauge("kit_calls_active", "Calls running or connecting", registry=registry).set_function(
            calls_active
        )
        Gauge("kit_calls_max", "BOT_MAX_CALLS in effect", registry=registry).set(max_calls)
        # Served from the event loop's own thread: a task a call leaves behind shows here.
        Gauge(
            "kit_event_loop_tasks", "Tasks alive on the bot's event loop", registry=registry
        ).set_function(lambda: len(asyncio.all_tasks()))
        # The default executor (Whisper, Smart Turn, aiortc's encoders) keeps the threads it has
        # started, up to its bound; counted apart, so that threads a call leaves behind show.
        Gauge(
            "kit_executor_threads",
            "Threads of the event loop's default executor (bounded, kept once started)",
            registry=registry,
        ).set_function(
            lambda: sum(t.name.startswith(EXECUTOR_THREAD_PREFIX) for t in threading.enumerate())
        )
        self.calls = Counter(
            "kit_calls", "Calls taken, by transport", ["transport"], registry=registry
        )
        self.refused = Counter(
            "kit_calls_refused", "Calls turned away: every place taken", registry=registry
        )
        self.turns = Histogram(
            "kit_turn_seconds",
            "Each turn's voice-to-voice time (stage=total) and its stages",
            ["stage"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "kit_dependency_failures",
            "A dependency failing a call's request, by service and kind (timeout or error)",
            ["service", "kind"],
            registry=registry,
        )
        for stage in (*STAGES, "total"):
            self.turns.labels(stage)  # every series exists from the start, at zero
        for service in ("stt", "llm", "tts"):
            for kind in ("timeout", "error"):
                self.failures.labels(service, kind)

    def turn(self, turn: TurnLatency) -> None:
        if turn.kind != "turn":
            return  # the greeting is not a caller waiting for an answer
        for stage, secs in turn.stages.items():
            self.turns.labels(stage).observe(secs)
        self.turns.labels("total").observe(turn.total)

    def failure(self, service: str, message: str) -> None:
        timed_out = "sent nothing" in message or "did not answer within" in message
        self.failures.labels(service, "timeout" if timed_out else "error").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
