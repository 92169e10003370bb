"""One call, top to bottom: transport in → Whisper → user turn → LLM → TTS → transport out.

Every transport (browser WebRTC, WebSocket, phone) hands its transport to `run_call`; everything
else about a call — services, turn taking, greeting, latency, failure reporting — lives here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, InputAudioRawFrame, TTSSpeakFrame
from pipecat.observers.user_bot_latency_observer import LatencyBreakdown, MeasuredFrom
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.filters.function_filter import FunctionFilter
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

from bot.call_config import CallConfig, call_config
from bot.config import Settings
from bot.health import PROBES
from bot.latency import CallLatency, TurnLatency
from bot.latency_observer import TurnLatencyObserver
from bot.llm import KitLLMService
from bot.metrics import BotMetrics
from bot.models import SpeechModel
from bot.options import CallOptions
from bot.playout import Playout, drop_stale_audio
from bot.services import make_llm, make_stt, make_tts
from bot.speculation import HeldSpeech
from bot.stt import SAMPLE_RATE as WHISPER_RATE
from bot.tts import SERVER_RATE
from bot.turns import call_vad, turn_policy, turn_strategies

# Whisper hears 16 kHz; the TTS contract speaks 24 kHz.
AUDIO_IN_RATE = WHISPER_RATE
AUDIO_OUT_RATE = SERVER_RATE

_APOLOGY = {
    "llm": "Sorry, I can't think right now: my language model is not answering. Please try again soon.",
}


async def _not_input_audio(frame: Frame) -> bool:
    return not isinstance(frame, InputAudioRawFrame)


def audio_params() -> dict:
    """TransportParams fields every transport shares: audio both ways, out in 20 ms chunks (not
    Pipecat's 40: a chunk on its way when the bot pauses or is cut off is still heard). No input
    filter: RNNoise cleans what the VAD hears, not what Whisper hears (bot/denoise.py)."""
    return {"audio_in_enabled": True, "audio_out_enabled": True, "audio_out_10ms_chunks": 2}


def transport_params(**extra) -> TransportParams:
    return TransportParams(**audio_params(), **extra)


@dataclass
class CallReport:
    """What a call leaves behind: its latency figures and the failures it reported."""

    call_id: str
    latency: CallLatency = field(default_factory=CallLatency)
    errors: list[str] = field(default_factory=list)


async def run_call(
    transport: BaseTransport,
    settings: Settings,
    speech: SpeechModel,
    session: aiohttp.ClientSession,
    options: CallOptions,
    *,
    call_id: str,
    metrics: BotMetrics | None = None,
    llm_slot: int | None = None,
) -> CallReport:
    """Run one call until the client leaves. Never raises for a failing dependency."""
    report = CallReport(call_id)
    drop_stale_audio()  # no scrap of what the caller talked over is played (bot/playout.py)

    config = call_config(settings, options.profile)
    context = LLMContext([{"role": "system", "content": options.prompt}])
    stt = make_stt(options, speech, config)
    llm = make_llm(settings, llm_slot, context)
    tts = make_tts(settings, options, session, config)

    playout = Playout()
    user_aggregator, assistant_aggregator = context_aggregators(
        context, settings, config, speech, playout
    )

    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            user_aggregator,
            # The caller's audio ends here: nothing further down hears it, and each 20 ms frame
            # used to pass six more processors and every observer (docs/operations.md).
            FunctionFilter(_not_input_audio, filter_system_frames=True),
            llm,
            tts,
            HeldSpeech(),  # an answer to a turn not yet confirmed waits here, as audio
            playout,  # at the pace of playback: paused over the caller's voice, heard up to here
            transport.output(),
            assistant_aggregator,
        ]
    )

    latency_observer = TurnLatencyObserver()
    worker = pipeline_worker(pipeline, latency_observer)
    services = {stt: "stt", llm: "llm", tts: "tts"}
    call = CallEvents(
        report, settings, session, options, worker, metrics, context, services, llm, playout
    )
    latency_observer.add_event_handler("on_latency_breakdown", call.on_latency_breakdown)
    worker.add_event_handler("on_pipeline_error", call.on_pipeline_error)
    call.in_background(call.end_unless_connected())
    transport.add_event_handler("on_client_connected", call.on_client_connected)
    assistant_aggregator.add_event_handler(
        "on_assistant_turn_stopped", call.on_assistant_turn_stopped
    )
    transport.add_event_handler("on_client_disconnected", call.on_client_disconnected)

    try:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()
    finally:
        call.cancel_tasks()
        logger.info(f"[{call_id}] call ended; latency summary:\n{report.latency.summary_table()}")
    return report


def context_aggregators(
    context: LLMContext,
    settings: Settings,
    config: CallConfig,
    speech: SpeechModel,
    playout: Playout | None = None,
) -> LLMContextAggregatorPair:
    """The user and assistant sides of the conversation; the user's decides when a turn starts
    and ends (Silero VAD, aware of mid-sentence pauses, and the turn strategies; with the
    call's `playout`, voice over the bot pauses it while it is judged)."""
    vad = call_vad(settings, config.vad_stop_secs)
    strategies = turn_strategies(
        config,
        vad,
        turn_policy(settings),
        speech.turn_model,
        context,
        speech.sentence_model,
        playout,
    )
    return LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(vad_analyzer=vad, user_turn_strategies=strategies),
    )


def pipeline_worker(pipeline: Pipeline, latency_observer: TurnLatencyObserver) -> PipelineWorker:
    """The worker that runs the call's pipeline: the rates, metrics, and no idle hang-up."""
    return PipelineWorker(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=AUDIO_IN_RATE,
            audio_out_sample_rate=AUDIO_OUT_RATE,
            enable_metrics=True,
            enable_usage_metrics=True,
        ),
        observers=[latency_observer],
        idle_timeout_secs=None,  # a quiet caller is not a reason to hang up
    )


class CallEvents:
    """What one call does when something happens: latency reports, failures and recoveries,
    the greeting, priming the LLM, and hanging up."""

    def __init__(
        self,
        report: CallReport,
        settings: Settings,
        session: aiohttp.ClientSession,
        options: CallOptions,
        worker: PipelineWorker,
        metrics: BotMetrics | None,
        context: LLMContext,
        services: dict[object, str],
        llm: KitLLMService,
        playout: Playout,
    ) -> None:
        self.report = report
        self.call_id = report.call_id
        self.settings = settings
        self.session = session
        self.options = options
        self.worker = worker
        self.metrics = metrics
        self.context = context
        self.services = services  # each service's processor, by its name in reports
        self.llm = llm  # primes its server's cache
        self.playout = playout  # knows what the caller heard of an interrupted answer
        self.outages: dict[str, asyncio.Task] = {}
        self.background: set[asyncio.Task] = set()
        self.connected = asyncio.Event()

    def in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task:
        """Run `work` for as long as the call lasts (cancelled when it ends)."""
        task = asyncio.create_task(work)
        self.background.add(task)
        return task

    def cancel_tasks(self) -> None:
        for task in [*self.outages.values(), *self.background]:
            task.cancel()

    async def tell_page(self, data: dict) -> None:
        await self.worker.rtvi.send_server_message(data)

    async def on_latency_breakdown(self, _observer, breakdown: LatencyBreakdown) -> None:
        """Record a turn's (or the greeting's) latency; log it and show it on the page."""
        report, call_id = self.report, self.call_id
        kind = "greeting" if breakdown.measured_from is MeasuredFrom.CLIENT_CONNECTED else "turn"
        if kind == "greeting" and report.latency.turns:
            # Pipecat's observer measures from the call's start when an answer begins with no
            # caller silence on record (the caller went on as an answer began): not a turn's
            # latency, and not a second greeting.
            logger.debug(f"[{call_id}] an answer with no caller silence to measure from")
            return
        number = len(report.latency.user_turns()) + (1 if kind == "turn" else 0)
        start = breakdown.user_turn_start_time or 0.0
        contributions = [
            (c.key, c.start_time - start, c.duration_secs) for c in breakdown.contributions
        ]
        turn = TurnLatency.from_contributions(number, contributions, kind, breakdown.user_turn_secs)
        report.latency.add(turn)
        if self.metrics:
            self.metrics.turn(turn)
        logger.info(f"[{call_id}] {turn.log_line()}")
        logger.debug(f"[{call_id}] breakdown:\n" + "\n".join(breakdown.turn_contribution_lines()))
        await self.tell_page(turn.message())

    async def on_pipeline_error(self, _worker, frame: ErrorFrame) -> None:
        """Report a failing service once per outage, apologise, and watch for its recovery."""
        call_id = self.call_id
        service = self.services.get(frame.processor, "bot")
        self.report.errors.append(f"{service}: {frame.error}")
        if self.metrics:
            self.metrics.failure(service, frame.error)
        if service in self.outages:
            # One message per outage: the page has been told, and hears when it is over.
            logger.debug(f"[{call_id}] {service} still failing: {frame.error}")
            return
        logger.warning(f"[{call_id}] {service} failed: {frame.error}")
        await self.tell_page({"type": "error", "service": service, "message": frame.error})
        if service in PROBES:
            self.outages[service] = asyncio.create_task(
                self.watch_recovery(service, frame.processor)
            )
            if service in _APOLOGY:
                await self.worker.queue_frame(
                    TTSSpeakFrame(_APOLOGY[service], append_to_context=False)
                )

    async def watch_recovery(self, service: str, processor) -> None:
        """Poll the failed dependency; when it answers again, say so and use it again."""
        try:
            while problem := await PROBES[service](self.session, self.settings):
                logger.debug(f"[{self.call_id}] still down: {problem}")
                await asyncio.sleep(2)
            if not processor.is_usable:
                await processor.set_usable(True)
            logger.info(f"[{self.call_id}] {service} is back")
            await self.tell_page({"type": "recovered", "service": service})
        finally:
            self.outages.pop(service, None)

    async def end_unless_connected(self) -> None:
        """An offer whose media never arrives (closed tab, failed ICE) gives its place back."""
        await asyncio.sleep(self.settings.bot_connect_timeout_secs)
        if not self.connected.is_set():
            logger.info(f"[{self.call_id}] the caller never connected; call ended")
            await self.worker.cancel()

    async def on_client_connected(self, _transport, _client) -> None:
        """Greet the caller, and have the LLM read the prompt and greeting meanwhile."""
        self.connected.set()
        logger.info(f"[{self.call_id}] client connected")
        greeting = self.settings.bot_greeting
        await self.worker.queue_frame(TTSSpeakFrame(greeting))
        messages = [
            {"role": "system", "content": self.options.prompt},
            {"role": "assistant", "content": greeting},
        ]
        self.in_background(self.llm.prime(messages))

    async def on_assistant_turn_stopped(self, _aggregator, message) -> None:
        """Once an answer is spoken or cut off: if the caller cut in, the conversation keeps
        what they heard of it, and says they cut in. Then prime the LLM with the conversation
        as the context keeps it: the LLM primed it as soon as the answer was written, and the
        spoken version of a cut answer differs in its last message."""
        self.playout.keep_heard(self.context, message)
        priming = self.in_background(self.llm.prime(list(self.context.get_messages())))
        priming.add_done_callback(self.background.discard)

    async def on_client_disconnected(self, _transport, _client) -> None:
        logger.info(f"[{self.call_id}] client disconnected")
        await self.worker.cancel()
