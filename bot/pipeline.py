"""One call, top to bottom: transport in → Whisper → user turn → LLM → TTS → transport out.

Every transport (browser WebRTC, WebSocket, phone) hands its transport to `run_call`; everything
else about a call — services, turn taking, greeting, latency, failure reporting — lives here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from loguru import logger
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import ErrorFrame, TTSSpeakFrame
from pipecat.observers.user_bot_latency_observer import (
    LatencyBreakdown,
    MeasuredFrom,
    UserBotLatencyObserver,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.workers.runner import WorkerRunner

from bot.config import Settings
from bot.health import PROBES
from bot.latency import CallLatency, TurnLatency
from bot.metrics import BotMetrics
from bot.models import SpeechModel
from bot.options import CallOptions
from bot.services import make_llm, make_stt, make_tts
from bot.stt import SAMPLE_RATE as WHISPER_RATE
from bot.tts import SERVER_RATE
from bot.tuning import tuning
from bot.turns import PauseAwareVAD, turn_strategies

# Whisper hears 16 kHz; the TTS contract speaks 24 kHz.
AUDIO_IN_RATE = WHISPER_RATE
AUDIO_OUT_RATE = SERVER_RATE

_APOLOGY = {
    "llm": "Sorry, I can't think right now: my language model is not answering. Please try again soon.",
}


def audio_params(settings: Settings) -> dict:
    """TransportParams fields every transport shares: audio both ways, RNNoise on the input."""
    params: dict = {"audio_in_enabled": True, "audio_out_enabled": True}
    if settings.rnnoise:
        try:
            from pipecat.audio.filters.rnnoise_filter import RNNoiseFilter

            params["audio_in_filter"] = RNNoiseFilter()
        except Exception as error:  # no pyrnnoise wheel on this platform
            logger.info(f"RNNoise unavailable ({error.__class__.__name__}); input not denoised")
    return params


def transport_params(settings: Settings, **extra) -> TransportParams:
    return TransportParams(**audio_params(settings), **extra)


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
) -> CallReport:
    """Run one call until the client leaves. Never raises for a failing dependency."""
    report = CallReport(call_id)

    tune = tuning(settings, options.profile)
    stt = make_stt(options, speech, tune)
    llm = make_llm(settings)
    tts = make_tts(settings, options, session, tune)

    context = LLMContext([{"role": "system", "content": options.prompt}])
    vad = PauseAwareVAD(
        params=VADParams(
            confidence=settings.vad_confidence,
            start_secs=settings.vad_start_secs,
            stop_secs=tune.vad_stop_secs,
            min_volume=settings.vad_min_volume,
        )
    )
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=vad, user_turn_strategies=turn_strategies(tune, vad, speech.turn_model)
        ),
    )

    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            user_aggregator,
            llm,
            tts,
            transport.output(),
            assistant_aggregator,
        ]
    )

    latency_observer = UserBotLatencyObserver()
    worker = PipelineWorker(
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
    services = {stt: "stt", llm: "llm", tts: "tts"}
    outages: dict[str, asyncio.Task] = {}
    background: set[asyncio.Task] = set()

    async def tell_page(data: dict) -> None:
        await worker.rtvi.send_server_message(data)

    @latency_observer.event_handler("on_latency_breakdown")
    async def on_latency_breakdown(_observer, breakdown: LatencyBreakdown) -> None:
        kind = "greeting" if breakdown.measured_from is MeasuredFrom.CLIENT_CONNECTED else "turn"
        number = len(report.latency.user_turns()) + (1 if kind == "turn" else 0)
        turn = TurnLatency.from_contributions(
            number, [(c.key, c.duration_secs) for c in breakdown.contributions], kind
        )
        report.latency.add(turn)
        if metrics:
            metrics.turn(turn)
        logger.info(f"[{call_id}] {turn.log_line()}")
        logger.debug(f"[{call_id}] breakdown:\n" + "\n".join(breakdown.turn_contribution_lines()))
        await tell_page(turn.message())

    @worker.event_handler("on_pipeline_error")
    async def on_pipeline_error(_worker, frame: ErrorFrame) -> None:
        service = services.get(frame.processor, "bot")
        report.errors.append(f"{service}: {frame.error}")
        if metrics:
            metrics.failure(service, frame.error)
        if service in outages:
            # One message per outage: the page has been told, and hears when it is over.
            logger.debug(f"[{call_id}] {service} still failing: {frame.error}")
            return
        logger.warning(f"[{call_id}] {service} failed: {frame.error}")
        await tell_page({"type": "error", "service": service, "message": frame.error})
        if service in PROBES:
            outages[service] = asyncio.create_task(watch_recovery(service, frame.processor))
            if service in _APOLOGY:
                await worker.queue_frame(TTSSpeakFrame(_APOLOGY[service], append_to_context=False))

    async def watch_recovery(service: str, processor) -> None:
        """Poll the failed dependency; when it answers again, say so and use it again."""
        try:
            while problem := await PROBES[service](session, settings):
                logger.debug(f"[{call_id}] still down: {problem}")
                await asyncio.sleep(2)
            if not processor.is_usable:
                await processor.set_usable(True)
            logger.info(f"[{call_id}] {service} is back")
            await tell_page({"type": "recovered", "service": service})
        finally:
            outages.pop(service, None)

    connected = asyncio.Event()

    async def end_unless_connected() -> None:
        # An offer whose media never arrives (closed tab, failed ICE) gives its place back.
        await asyncio.sleep(settings.bot_connect_timeout_secs)
        if not connected.is_set():
            logger.info(f"[{call_id}] the caller never connected; call ended")
            await worker.cancel()

    background.add(asyncio.create_task(end_unless_connected()))

    def prime(messages: list[dict]) -> None:
        priming = asyncio.create_task(llm.prime(messages))
        background.add(priming)
        priming.add_done_callback(background.discard)

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport, _client) -> None:
        connected.set()
        logger.info(f"[{call_id}] client connected")
        await worker.queue_frame(TTSSpeakFrame(settings.bot_greeting))
        prime(
            [
                {"role": "system", "content": options.prompt},
                {"role": "assistant", "content": settings.bot_greeting},
            ]
        )

    @assistant_aggregator.event_handler("on_assistant_turn_stopped")
    async def on_assistant_turn_stopped(_aggregator, _message) -> None:
        prime(list(context.get_messages()))

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport, _client) -> None:
        logger.info(f"[{call_id}] client disconnected")
        await worker.cancel()

    try:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()
    finally:
        for task in [*outages.values(), *background]:
            task.cancel()
        logger.info(f"[{call_id}] call ended; latency summary:\n{report.latency.summary_table()}")
    return report
