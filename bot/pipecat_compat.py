"""Every private name of Pipecat's (and of aiortc's, under Pipecat's SmallWebRTC transport) that
the kit uses, in one place.

Pipecat 1.14 offers no public way to do these things. Each use is a small function here; where
the kit has to override a private method, the subclass stays where it is. Either way the names
are listed in `RELIED_ON`, with why and what upstream change would retire them, and
tests/unit/test_pipecat_compat.py checks every one against the installed release: an upgrade that
renames one fails there first, naming it and what in the kit depends on it, not in a call.
docs/architecture.md ("Pipecat internals the kit relies on") has the same list as a table.

Pipecat and aiortc are imported here only for type checking, or inside the function that needs
them: importing this module loads nothing (the transports' modules, aiortc's, are heavy).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from openai import AsyncOpenAI
    from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState
    from pipecat.frames.frames import Frame
    from pipecat.observers.user_bot_latency_observer import UserBotLatencyObserver
    from pipecat.services.llm_service import LLMService
    from pipecat.services.openai.base_llm import BaseOpenAILLMService
    from pipecat.services.stt_service import SegmentedSTTService
    from pipecat.services.tts_service import TTSService
    from pipecat.services.whisper.stt import WhisperSTTService
    from pipecat.transports.base_output import BaseOutputTransport
    from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
    from pipecat.transports.smallwebrtc.transport import RawAudioTrack
    from pipecat.turns.speculation_gate import SpeculationGate
    from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator


@dataclass(frozen=True)
class Internal:
    """Private names of one Pipecat (or aiortc) class or module that the kit relies on."""

    owner: str  # "module:Class" ("module:Outer.Inner"), or "module" for module-level names
    names: tuple[str, ...]  # a method as "name(param, ...)": the parameters the kit passes
    kit: str  # what in the kit depends on them
    why: str  # why nothing public serves
    retire: str  # the upstream change that would let the kit drop them


_VAD = "pipecat.audio.vad.vad_analyzer:VADAnalyzer"
_TTS = "pipecat.services.tts_service:TTSService"

RELIED_ON: tuple[Internal, ...] = (
    Internal(
        _VAD,
        ("_run_analyzer(buffer)",),
        "PauseAwareVAD (bot/turns.py) overrides it: the noise floor hears the raw line, and "
        "RNNoise cleans what Silero hears",
        "the one per-window step in the VAD's thread, ahead of its state machine",
        "a public hook on the VAD's input audio",
    ),
    Internal(
        _VAD,
        ("_vad_state", "_vad_stopping_count"),
        "PauseAwareVAD's speaking, hearing and pause_secs: the turn and overlap strategies read "
        "them every frame",
        "the VAD announces only its start and stop, not its state after each window",
        "a public state, and the silence so far within speech",
    ),
    Internal(
        _VAD,
        ("_executor",),
        "PauseAwareVAD.cleanup closes RNNoise in the VAD's thread, after the analysis queued there",
        "the thread the analysis runs in is not exposed",
        "a cleanup step run in the VAD's thread",
    ),
    Internal(
        "pipecat.audio.vad.silero:SileroVADAnalyzer",
        ("_maybe_reset_model(confidence)", "_windows_since_reset"),
        "PauseAwareVAD.voice_confidence: Silero is not asked on long silence, yet its periodic "
        "resets fall where they would",
        "the reset schedule runs only inside voice_confidence",
        "Silero skipping silence itself, or a public reset step",
    ),
    Internal(
        "pipecat.audio.turn.smart_turn.local_smart_turn_v3:LocalSmartTurnAnalyzerV3",
        ("_predict_endpoint(audio_array)",),
        "SmartTurnModel.probability (bot/turns.py): the hybrid strategy scores a turn's audio "
        "when it chooses",
        "the public analysis scores audio Pipecat buffered itself, at moments it chooses",
        "a public predict(audio)",
    ),
    Internal(
        "pipecat.services.llm_service:LLMService",
        ("_speculation_gate",),
        "KitLLMService (bot/llm.py) puts SpeakingGate there: an unconfirmed answer goes on to "
        "TTS and is held as audio (bot/speculation.py)",
        "the gate is built in __init__, with no parameter",
        "a speculation-gate parameter, or an option to hold speech rather than text",
    ),
    Internal(
        "pipecat.services.llm_service:LLMService",
        ("_push_llm_text(text)",),
        "KitLLMService overrides it: every piece of an answer passes AnswerGuard, which may end it",
        "the one place all of an answer's text passes before it goes out",
        "a public hook on the LLM's text",
    ),
    Internal(
        "pipecat.services.openai.base_llm:BaseOpenAILLMService",
        ("_process_context(context)", "_client"),
        "KitLLMService overrides _process_context (the guard, filler and priming around each "
        "answer) and uses the client for its own requests (priming, read-ahead, closing it)",
        "the per-answer step and the AsyncOpenAI client are not public",
        "per-answer hooks, and a public client",
    ),
    Internal(
        _TTS,
        ("_text_aggregator",),
        "KitTTSService (bot/tts.py) puts FirstClauseAggregator (bot/text.py) there",
        "the aggregator is built in __init__, with no parameter",
        "a text-aggregator parameter",
    ),
    Internal(
        _TTS,
        ("_stream_audio_frames_from_iterator(iterator, in_sample_rate, context_id)",),
        "KitTTSService: the server's streamed bytes as frames of whole samples",
        "Pipecat's helper for this is private",
        "the helper made public",
    ),
    Internal(
        _TTS,
        ("_record_context_audio_outcome(context_id, received_audio)", "_stop_frame_timeout_s"),
        "KitTTSService overrides it: a failure reported once is not reported again, and an "
        "answer gone quiet is said so in words (with the wait)",
        "the only place an answer that brought no audio is reported",
        "a public hook for an answer without audio",
    ),
    Internal(
        "pipecat.services.whisper.stt:WhisperSTTService",
        ("_load()", "_model", "_unsupported_language()"),
        "SharedWhisperSTTService (bot/stt.py) overrides _load: the process's one model serves "
        "every call, checked for the call's language",
        "the model is loaded in __init__, with no way to pass one in",
        "a model parameter",
    ),
    Internal(
        "pipecat.services.stt_service:SegmentedSTTService",
        ("_audio_buffer", "_user_speaking", "_trailing_silence()"),
        "SharedWhisperSTTService: early transcription at a pause, and the words so far, read "
        "the segment before the VAD's stop",
        "the segment's audio reaches run_stt only at the stop",
        "a public way to transcribe the segment so far",
    ),
    Internal(
        "pipecat.utils.text.simple_text_aggregator:SimpleTextAggregator",
        ("_text",),
        "FirstClauseAggregator (bot/text.py) cuts a piece off the text held so far",
        "the public text is read-only (and stripped); only a sentence's end cuts it",
        "a pluggable cut rule, or a way to take a piece off the buffer",
    ),
    Internal(
        "pipecat.transports.smallwebrtc.transport:RawAudioTrack",
        ("_chunk_queue", "_timestamp", "_start", "_sample_rate", "_samples_per_10ms"),
        "QuietAudioTrack (bot/transports/quiet_track.py) waits while nothing is queued, and "
        "resumes its RTP clock at the time it sends again",
        "without auto_silence the track waits, but its timestamps go on from the last packet",
        "discontinuous transmission (no silence sent, timestamps on the clock) upstream",
    ),
    Internal(
        "pipecat.transports.smallwebrtc.transport",
        ("RawAudioTrack",),
        "use_quiet_track(): every SmallWebRTC transport of the process sends QuietAudioTrack",
        "the transport builds its track by this module-level name",
        "a track class or factory parameter",
    ),
    Internal(
        "pipecat.transports.base_output:BaseOutputTransport",
        ("MediaSender",),
        "drop_stale_audio() (bot/playout.py) swaps in its _MediaSender, process-wide",
        "the output transport builds its senders by this class attribute",
        "Pipecat dropping the audio of before an interruption itself",
    ),
    Internal(
        "pipecat.transports.base_output:BaseOutputTransport.MediaSender",
        ("_next_frame()",),
        "_MediaSender (bot/playout.py) overrides it: audio chunked before the latest "
        "interruption is not played",
        "a chunk the playing task already took escapes the interruption's emptying of the queue",
        "the sender dropping such chunks itself",
    ),
    Internal(
        "pipecat.observers.user_bot_latency_observer:UserBotLatencyObserver",
        ("_user_stopped_time", "_user_turn_start_time", "_user_turn", "_moments"),
        "TurnLatencyObserver (bot/latency_observer.py) keeps the caller's side of a cycle "
        "through a withdrawn early answer",
        "the observer clears its whole cycle on any interruption; the cycle is private state",
        "an interruption before the bot speaks, after the user stopped, leaving the cycle alone",
    ),
    Internal(
        "pipecat.observers.user_bot_latency_observer:_MomentKind",
        ("VAD_STOP", "TRANSCRIPT"),
        "TurnLatencyObserver: the moments that are the caller's side of a cycle",
        "the kinds of moment are private",
        "as for the cycle above",
    ),
    Internal(
        "aiortc.rtcrtpreceiver:RTCRtpReceiver",
        ("_RTCRtpReceiver__jitter_buffer",),
        "the WebRTC signalling (bot/transports/webrtc.py) holds the caller's audio "
        "BOT_WEBRTC_JITTER_PACKETS packets, not aiortc's fixed four",
        "aiortc builds the receiver's jitter buffer with no setting",
        "a jitter-buffer setting in aiortc (or the SmallWebRTC connection)",
    ),
    Internal(
        "aiortc.jitterbuffer:JitterBuffer",
        ("_prefetch",),
        "the same: how many newer packets the buffer waits for before it hands one on",
        "aiortc sets it once, from a constant",
        "a jitter-buffer setting in aiortc (or the SmallWebRTC connection)",
    ),
)


# --- the VAD (bot/turns.py) --------------------------------------------------------------


def vad_state(vad: VADAnalyzer) -> VADState:
    """The VAD's state after its latest window."""
    return vad._vad_state


def vad_stopping_count(vad: VADAnalyzer) -> int:
    """Silent windows so far while the VAD is stopping (0 in any other state)."""
    return vad._vad_stopping_count


def vad_thread(vad: VADAnalyzer) -> ThreadPoolExecutor:
    """The one thread the VAD analyses in."""
    return vad._executor


def reset_silero_if_due(vad: SileroVADAnalyzer, confidence: float) -> bool:
    """Count a window Silero was not asked about toward its periodic model reset, as asking
    would have; True if the model was reset now."""
    vad._maybe_reset_model(confidence)
    return vad._windows_since_reset == 0


def smart_turn_probability(analyzer: LocalSmartTurnAnalyzerV3, audio: np.ndarray) -> float:
    """Smart Turn's P(the turn is complete) for 16 kHz float32 audio. Blocking."""
    return float(analyzer._predict_endpoint(audio)["probability"])


# --- the LLM (bot/llm.py) ----------------------------------------------------------------


def use_speculation_gate(llm: LLMService[Any], gate: SpeculationGate) -> None:
    """Have the LLM service decide through `gate` what to hold of an unconfirmed answer."""
    llm._speculation_gate = gate


def openai_client(llm: BaseOpenAILLMService) -> AsyncOpenAI:
    """The OpenAI client the service made (its server's base URL, its connections)."""
    return llm._client


# --- TTS (bot/tts.py, bot/text.py) -------------------------------------------------------


def text_aggregator(tts: TTSService) -> SimpleTextAggregator:
    """The aggregator that cuts the LLM's text into pieces for TTS."""
    return tts._text_aggregator


def use_text_aggregator(tts: TTSService, aggregator: SimpleTextAggregator) -> None:
    tts._text_aggregator = aggregator


def stream_audio_frames(
    tts: TTSService, chunks: AsyncIterator[bytes], *, in_sample_rate: int, context_id: str
) -> AsyncGenerator[Frame, None]:
    """16-bit PCM bytes, however they arrive, as audio frames of whole samples at the
    service's rate."""
    return tts._stream_audio_frames_from_iterator(
        chunks, in_sample_rate=in_sample_rate, context_id=context_id
    )


def stop_frame_timeout_secs(tts: TTSService) -> float:
    """How long an answer may bring no audio before the service ends it."""
    return tts._stop_frame_timeout_s


def held_text(aggregator: SimpleTextAggregator) -> str:
    """The text the aggregator holds, not yet passed on (unstripped)."""
    return aggregator._text


def hold_text(aggregator: SimpleTextAggregator, text: str) -> None:
    aggregator._text = text


# --- STT (bot/stt.py) --------------------------------------------------------------------


def use_whisper_model(stt: WhisperSTTService, model: Any) -> None:
    """Have the service transcribe with `model` (anything with faster-whisper's `transcribe`
    and `supported_languages`). Raises ValueError if it cannot transcribe the call's language."""
    stt._model = model
    if unsupported := stt._unsupported_language():
        raise ValueError(unsupported)


def segment_audio(stt: SegmentedSTTService) -> bytearray:
    """The current segment's audio so far, 16-bit PCM: the service's own buffer (copy it to
    keep it)."""
    return stt._audio_buffer


def user_speaking(stt: SegmentedSTTService) -> bool:
    """Whether the VAD has the user speaking (a segment is being heard)."""
    return stt._user_speaking


def trailing_silence(stt: SegmentedSTTService) -> bytes:
    """The silence the service appends to a segment before transcribing it."""
    return stt._trailing_silence()


# --- transports --------------------------------------------------------------------------


def use_media_sender(sender: type[BaseOutputTransport.MediaSender]) -> None:
    """Have every output transport made from now on, in this process, send through `sender`."""
    from pipecat.transports.base_output import BaseOutputTransport

    BaseOutputTransport.MediaSender = sender


def use_output_track(track: type[RawAudioTrack]) -> None:
    """Have every SmallWebRTC transport made from now on, in this process, send its audio
    through `track`."""
    import pipecat.transports.smallwebrtc.transport as smallwebrtc

    smallwebrtc.RawAudioTrack = track


def queued_audio(track: RawAudioTrack) -> bool:
    """Whether the output track has audio queued."""
    return bool(track._chunk_queue)


def track_clock_to_now(track: RawAudioTrack) -> None:
    """Move the track's next RTP timestamp on to now (on its 10 ms grid), if it is behind:
    the time nothing was sent becomes a gap in the timestamps."""
    now = round((time.time() - track._start) * track._sample_rate)
    track._timestamp = max(track._timestamp, now - now % track._samples_per_10ms)


def set_jitter_prefetch(connection: SmallWebRTCConnection, packets: int) -> None:
    """Hold the caller's audio for `packets` 20 ms packets before it is decoded, not aiortc's
    fixed four: a receiver releases a packet once that many newer ones have arrived (reordered
    packets within them are put back in order; later ones are dropped)."""
    for transceiver in connection.pc.getTransceivers():
        if transceiver.kind == "audio":
            transceiver.receiver._RTCRtpReceiver__jitter_buffer._prefetch = packets  # type: ignore[attr-defined]


# --- the latency observer (bot/latency_observer.py) --------------------------------------

# When the caller's turn started, its length, and its moments (VAD stop, transcript).
CallersSide = tuple[float | None, float | None, list[Any]]


def callers_side(observer: UserBotLatencyObserver) -> CallersSide | None:
    """The caller's side of the observer's current cycle, once they have fallen silent (None
    before)."""
    from pipecat.observers.user_bot_latency_observer import _MomentKind

    if observer._user_stopped_time is None:
        return None
    kinds = (_MomentKind.VAD_STOP, _MomentKind.TRANSCRIPT)
    moments = [m for m in observer._moments if m.kind in kinds]
    return observer._user_turn_start_time, observer._user_turn, moments


def restore_callers_side(observer: UserBotLatencyObserver, kept: CallersSide) -> None:
    """Put back what `callers_side` kept, after the observer cleared its cycle."""
    observer._user_turn_start_time, observer._user_turn, observer._moments = kept
