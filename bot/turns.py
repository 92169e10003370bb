"""When the caller has finished speaking, decided at every pause with the answer already on its
way; and the caller heard over other voices.

One turn, from the caller's last word (T):
- T + TURN_EARLY_SECS of silence (a pause): Whisper transcribes what was said so far (the STT
  service, asked with `TranscribeNowFrame`). Where the words leave the verdict open (a statement,
  or no punctuation: bot/turn_policy.py), a small language model reads whether they end a
  sentence (bot/sentence_end.py), and Smart Turn scores the turn's audio: a question or a request
  ends the turn, an opening ("Can you tell me") keeps it open, whatever the models say. Run one
  after the other, not side by side, they do not share the CPU.
- With the transcript (and the probability, where it counts), and a turn likely to end soon
  (`TurnPolicy.may_speculate`), the answer starts on that transcript: the LLM writes it, TTS
  speaks it, and its audio is held (bot/speculation.py) until the turn is confirmed.
- From T + VAD_STOP_SECS (the VAD's stop): `TurnPolicy.end_after` says how much silence ends the
  turn, from the words, Smart Turn's probability (scored again every `rescore_secs` as the
  silence grows) and this caller's own gaps between sentences earlier in the call. The turn ends
  once that much silence has been heard (the held answer plays at once). Speech before then
  withdraws the answer unheard, and the pause counts as one of the caller's gaps.
- The caller speaks again within `resume_secs` of the answer's first audio (`ResumeStartStrategy`):
  the bot stops at once, the cut answer is forgotten, and the next answer is to the whole turn.

In babble (other people talking) Silero hears speech everywhere and would hold the caller's turn
open long after their words. `PauseAwareVAD` therefore also compares each window's level with
the line's level while the caller was quiet (`NoiseFloor`): a window not clearly above it is not
the caller's voice.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import deque

import numpy as np
from loguru import logger
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EagerTranscriptionFrame,
    Frame,
    InputAudioRawFrame,
    MetricsFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_start import (
    BaseUserTurnStartStrategy,
    TranscriptionUserTurnStartStrategy,
    VADUserTurnStartStrategy,
)
from pipecat.turns.user_stop import (
    BaseUserTurnStopStrategy,
    NormalizedMatch,
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from bot import pipecat_compat
from bot.call_config import CallConfig
from bot.config import Settings
from bot.denoise import Denoiser, denoiser
from bot.overlap import OverlapStartStrategy
from bot.playout import CUT_NOTE, Playout
from bot.sentence_end import SentenceEndModel
from bot.stt import SAMPLE_RATE, NothingHeardFrame, TranscribeNowFrame
from bot.turn_policy import Cue, TurnPolicy

# Smart Turn reads the last 8 s; the turn's audio starts this long before its first speech.
_SMART_TURN_SECS = 8.0
_PRE_SPEECH_SECS = 0.5
_FRAME_SECS = 0.02  # a transport's audio frame: a wait is heard out to within one
_STALLED_INPUT_SECS = 1.0  # no audio this long after a wait's end: the input has stopped
# Silero's confidence from which a window may be the caller starting again: a turn does not end
# on it (the VAD's own threshold, 0.7, missed soft onsets by 0.1-0.4 s; make turn-study). Nor on
# a frame this far above the line's level over the half second before (and this loud).
STIRRING = 0.3
ONSET_DB, ONSET_MIN_DBFS = 12.0, -55.0
# A window whose loudest sample is no louder (16-bit; -66 dBFS) is silence; after this many such
# windows (1 s), Silero is not asked about more (checked on the turn set: not one of the VAD's
# decisions changes, tests/unit/test_vad_silence.py).
SILENT_PEAK, SILENT_WINDOWS = 16, 31


def turn_policy(settings: Settings) -> TurnPolicy:
    """The call's turn-taking thresholds, from the settings."""
    return TurnPolicy(
        early_secs=settings.turn_early_secs,
        question_wait=settings.turn_question_secs,
        statement_wait=settings.turn_statement_secs,
        open_wait=settings.turn_stop_secs,
        resume_secs=settings.turn_resume_secs,
        backchannel_secs=settings.turn_backchannel_secs,
    )


def _db(power: float) -> float:
    return 10 * math.log10(power + 1e-10)


class NoiseFloor:
    """The room's level, and whether the line stands out from it now.

    Measured on the line as it is (RNNoise would hide the room between words and let it through
    in between), as power over the last `smooth_secs`: over a fifth of a second, other voices'
    syllables blur into a steady level that a caller 10 dB louder stands out from (over 32 ms
    they overlap). The floor is the 10th percentile of that level over the last 3 s: the
    room is there between the caller's words and while they listen, so it needs no one to say
    who was speaking (Silero cannot: it hears the other voices as speech). Audio not `margin_db`
    above it does not count as the caller's voice, whatever Silero says, and speech does not
    start below `start_extra_db` more (other voices' loudest syllables reach the margin).

    Only a room that sounds like speech to Silero (`voices`: other people talking) is gated so:
    in a fan's or a street's steady noise Silero tells the caller apart itself, and a caller only
    a few dB above such noise would otherwise not be heard at all. Until the room has been heard
    for 0.3 s, everything counts.
    """

    def __init__(
        self,
        margin_db: float,
        *,
        start_extra_db: float = 4.0,
        smooth_secs: float = 0.2,
        history_secs: float = 3.0,
        frame_secs: float = 0.02,
        sample_rate: int = 16000,
    ):
        self.margin_db = margin_db
        # The line is heard in frames of `frame_secs`, however long the pieces it comes in.
        self._frame_bytes = 2 * max(1, round(frame_secs * sample_rate))
        self._pending = b""
        self.start_extra_db = start_extra_db
        self._recent: deque[float] = deque(maxlen=max(1, round(smooth_secs / frame_secs)))
        # The frames before the latest, over 0.5 s, in dBFS.
        self._frames: deque[float] = deque(maxlen=max(1, round(0.5 / frame_secs) - 1))
        self._levels: deque[float] = deque(maxlen=max(1, round(history_secs / frame_secs)))
        self._needed = max(1, round(0.3 / frame_secs))
        # The floor is asked for every VAD window; a percentile of 150 levels costs more than
        # the rest of the frame's work, and over 3 s of history it moves little in 0.1 s.
        self._floor: float | None = None
        self._stale = max(1, round(0.1 / frame_secs))
        self._since = self._stale
        # How much the room itself sounds like speech to Silero (0-1): undecided at first, so
        # that people talking from the start of a call are kept out until Silero has heard them.
        self._voices = 0.5
        # Whether a frame of the latest audio alone is well above the line's level just before:
        # the start of a sound, which Silero may not yet call voice ("she", "please" on a phone).
        self.rising = False

    def listen(self, pcm: bytes) -> None:
        """Take the line's next audio (16-bit PCM), frame by frame."""
        pcm, self.rising = self._pending + pcm, False
        whole = len(pcm) - len(pcm) % self._frame_bytes
        for start in range(0, whole, self._frame_bytes):
            self._take(pcm[start : start + self._frame_bytes])
        self._pending = pcm[whole:]

    def _take(self, frame: bytes) -> None:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768
        self._recent.append(float(np.mean(samples**2)))
        level = _db(self._recent[-1])
        # Decided here, once per frame: the turn-taking processors ask for every piece of audio.
        self.rising |= len(self._frames) == self._frames.maxlen and level >= max(
            statistics.median(self._frames) + ONSET_DB, ONSET_MIN_DBFS
        )
        self._frames.append(level)
        self._levels.append(self.level)
        self._since += 1

    @property
    def level(self) -> float:
        """The line's level now (its power over the last `smooth_secs`), in dBFS."""
        return _db(sum(self._recent) / len(self._recent) if self._recent else 0.0)

    @property
    def floor(self) -> float | None:
        """The room's level in dBFS, once known."""
        if len(self._levels) < self._needed:
            return None
        if self._floor is None or self._since >= self._stale:
            self._floor, self._since = float(np.percentile(self._levels, 10)), 0
        return self._floor

    def judge(self, confidence: float) -> None:
        """Take Silero's confidence for the latest audio: at the room's level, it says whether
        the room itself is talking."""
        floor = self.floor
        if floor is not None and self.level < floor + self.margin_db:
            self._voices += 0.05 * (confidence - self._voices)

    @property
    def voices(self) -> bool:
        """Whether the room sounds like other people talking."""
        return self._voices >= 0.5

    def stands_out(self, *, starting: bool = False) -> bool:
        """Whether the line now can be the caller's voice (`starting` it), by its level."""
        floor = self.floor
        if floor is None or not self.voices:
            return True
        extra = self.start_extra_db if starting else 0.0
        return self.level >= floor + self.margin_db + extra


class PauseAwareVAD(SileroVADAnalyzer):
    """Silero VAD that also says how long the voice has been silent within speech.

    The VAD calls speech over after `stop_secs` (0.2 s); the turn strategy starts its work at
    the first `TURN_EARLY_SECS` of that silence, on the same analysis rather than a second VAD.
    With `denoise`, it hears the line through RNNoise (bot/denoise.py), in its own thread; the
    frames it is given, and so Whisper and Smart Turn, stay as they are. With `floor_margin_db`,
    a window no louder than that above the line's quiet level (`NoiseFloor`) is not speech.
    """

    def __init__(self, *, denoise: bool = False, floor_margin_db: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self._denoise = denoise
        self._denoiser: Denoiser | None = None
        self._floor_margin_db = floor_margin_db
        self._floor: NoiseFloor | None = None
        self._confidence = 0.0  # Silero's, for the latest window, after the noise floor
        self._silent_windows = 0  # the latest windows in a row that were silence
        self._silero = 0.0  # Silero's latest confidence

    def set_sample_rate(self, sample_rate: int) -> None:
        super().set_sample_rate(sample_rate)
        if self._denoise:
            if self._denoiser is not None:
                self._denoiser.close()
            self._denoiser = denoiser(self.sample_rate)
        if self._floor_margin_db:
            self._floor = NoiseFloor(self._floor_margin_db, sample_rate=self.sample_rate)

    def _run_analyzer(self, buffer: bytes) -> VADState:
        # Pipecat's private per-window step, in the VAD's thread (bot/pipecat_compat.py).
        if self._floor is not None:
            self._floor.listen(buffer)
        if self._denoiser is not None:
            buffer = self._denoiser(buffer)
        return super()._run_analyzer(buffer)

    def voice_confidence(self, buffer: bytes) -> float:
        samples = np.frombuffer(buffer, dtype="<i2")
        silent = int(samples.min()) >= -SILENT_PEAK and int(samples.max()) <= SILENT_PEAK
        self._silent_windows = self._silent_windows + 1 if silent else 0
        if self._silent_windows > SILENT_WINDOWS:
            # Silence for a while (a muted microphone, a browser's noise suppression, a phone
            # line's quiet): Silero's inference is most of the VAD's work, and by now its state
            # has settled where more silence leaves it, so it is not asked: its answer stands.
            confidence = self._silero
            # Pipecat's periodic resets fall where they would; after one, Silero settles again.
            if pipecat_compat.reset_silero_if_due(self, confidence):
                self._silent_windows = 0
        else:
            confidence = float(np.asarray(super().voice_confidence(buffer)).reshape(-1)[0])
            self._silero = confidence
        if self._floor is not None:
            self._floor.judge(confidence)
            starting = pipecat_compat.vad_state(self) in (VADState.QUIET, VADState.STARTING)
            if not self._floor.stands_out(starting=starting):
                confidence = 0.0
        self._confidence = confidence
        return confidence

    async def cleanup(self) -> None:
        if self._denoiser is not None:
            # In the VAD's thread, so after any analysis still queued there.
            thread = pipecat_compat.vad_thread(self)
            await asyncio.get_running_loop().run_in_executor(thread, self._denoiser.close)
        await super().cleanup()

    @property
    def speaking(self) -> bool:
        """Voice in the latest window (and the stretch of speech confirmed)."""
        return pipecat_compat.vad_state(self) is VADState.SPEAKING

    @property
    def hearing(self) -> bool:
        """Voice in the latest window, confirmed as speech or not yet (the VAD's start)."""
        return pipecat_compat.vad_state(self) in (VADState.STARTING, VADState.SPEAKING)

    @property
    def stirring(self) -> bool:
        """Voice in the latest window, or what may be the start of some: a soft onset ("she",
        "please", a phone line) that Silero is not yet sure of."""
        rising = self._floor is not None and self._floor.rising
        return self.hearing or self._confidence >= STIRRING or rising

    @property
    def room_db(self) -> float | None:
        """The room's noise floor in dBFS, once the noise floor has heard enough."""
        return self._floor.floor if self._floor is not None else None

    @property
    def pause_secs(self) -> float:
        """Silence so far inside a stretch of speech; 0 while speaking or before any speech."""
        if pipecat_compat.vad_state(self) is not VADState.STOPPING:
            return 0.0
        windows = pipecat_compat.vad_stopping_count(self)
        return windows * self.num_frames_required() / self.sample_rate


def call_vad(settings: Settings, stop_secs: float) -> PauseAwareVAD:
    """The VAD a call hears with: the settings' Silero thresholds, through RNNoise if RNNOISE."""
    return PauseAwareVAD(
        denoise=settings.rnnoise,
        floor_margin_db=settings.vad_floor_margin_db,
        params=VADParams(
            confidence=settings.vad_confidence,
            start_secs=settings.vad_start_secs,
            stop_secs=stop_secs,
            min_volume=settings.vad_min_volume,
        ),
    )


class SmartTurnModel(LocalSmartTurnAnalyzerV3):
    """Smart Turn v3 (the ONNX model inside pipecat) as a probability of a finished turn."""

    def probability(self, audio: np.ndarray) -> float:
        """P(turn complete) for 16 kHz float32 audio ending now. Blocking: run it in a thread."""
        return pipecat_compat.smart_turn_probability(self, audio)


class TurnAudio:
    """The current turn's input audio, from shortly before its first speech."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._samples = 0

    def add(self, pcm: bytes) -> None:
        chunk = np.frombuffer(pcm, dtype="<i2")
        self._chunks.append(chunk)
        self._samples += len(chunk)
        # Only what Smart Turn reads (plus the pre-speech margin) is kept.
        limit = int((_SMART_TURN_SECS + _PRE_SPEECH_SECS) * SAMPLE_RATE)
        while self._chunks and self._samples - len(self._chunks[0]) >= limit:
            self._samples -= len(self._chunks.pop(0))

    def restart(self, keep_secs: float) -> None:
        """A turn starts: keep only the last `keep_secs` (speech that led to it, and a margin)."""
        kept = self.audio()[-int(keep_secs * SAMPLE_RATE) :]
        self._chunks, self._samples = [np.array(kept * 32768, dtype="<i2")], len(kept)

    def audio(self) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, np.float32)
        return np.concatenate(self._chunks).astype(np.float32) / 32768


class Resumption:
    """A caller who goes on just after the answer began: shared by the start strategy that
    notices it and the stop strategy that ends the resumed turn.

    The answer they talked over (a word or two) leaves the conversation, so that the next
    answer, to the whole turn, follows the caller's words directly.
    """

    def __init__(self, context: LLMContext | None = None):
        self._context = context
        self.pending = False  # a resumed turn has started and not yet been answered

    def start(self) -> None:
        self.pending = True

    def settle(self) -> None:
        """Before the resumed turn is answered: drop what the bot said since the caller's last
        words, and the note that they cut in (idempotent)."""
        if not self.pending or self._context is None:
            return
        self.pending = False
        messages = list(self._context.get_messages())
        while messages and isinstance(last := messages[-1], dict):
            if last.get("role") != "assistant" and last.get("content") != CUT_NOTE:
                break
            messages.pop()
        self._context.set_messages(messages)


class ResumeStartStrategy(BaseUserTurnStartStrategy):
    """Starts the caller's turn at once when they speak within `resume_secs` of the answer's
    first audio: they had not finished. (Later, Pipecat's own start strategies decide.)"""

    def __init__(self, *, vad: PauseAwareVAD, policy: TurnPolicy, resumption: Resumption):
        super().__init__()
        self._vad = vad
        self._policy = policy
        self._resumption = resumption
        self._bot_started: float | None = None  # heard audio when the answer began
        self._heard = 0.0  # seconds of input audio so far
        self._voice = 0.0  # seconds of voice just now

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_started = self._heard
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_started = None
        elif isinstance(frame, InputAudioRawFrame):
            secs = frame.num_frames / frame.sample_rate
            self._heard += secs
            self._voice = self._voice + secs if self._vad.hearing else 0.0
            since = None if self._bot_started is None else self._heard - self._bot_started
            early = since is not None and since < self._policy.resume_secs
            if early and self._voice >= self._policy.resume_voice_secs:
                self._bot_started = None
                logger.debug(f"{self}: the caller went on as the answer began; answering it whole")
                self._resumption.start()
                await self.trigger_user_turn_started()
                return ProcessFrameResult.STOP
        return ProcessFrameResult.CONTINUE


class HybridTurnStopStrategy(BaseUserTurnStopStrategy):
    """Ends the caller's turn when `TurnPolicy` says so, answering speculatively from the first
    pause (see the module's docstring)."""

    def __init__(
        self,
        *,
        vad: PauseAwareVAD,
        model: SmartTurnModel,
        policy: TurnPolicy,
        resumption: Resumption | None = None,
        sentences: SentenceEndModel | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._vad = vad
        self._model = model
        self._policy = policy
        self._sentences = sentences
        self._resumption = resumption or Resumption()
        self._match = NormalizedMatch()
        self._audio = TurnAudio()
        self._committed = ""  # final transcripts of this turn's segments
        self._eager = ""  # the current segment's early transcript
        self._scoring: asyncio.Task | None = None
        self._probability: float | None = None
        # The language model's reading of a transcript: (the text, P(a sentence ends there));
        # None for a reading that failed.
        self._reading: tuple[str, float | None] | None = None
        self._paused = False
        self._vad_stopped = False
        self._segment_final = False
        self._speculation: str | None = None
        self._wait: asyncio.Task | None = None
        self._end_at: float | None = None  # the verdict: silence after the last word that ends it
        # Silence is counted in heard audio, not by the clock: frames that queue behind a busy
        # event loop would otherwise let the clock run out while the caller's next words are
        # still unread.
        self._silence: float | None = None  # since the last word, once the VAD has stopped
        self._gaps: deque[float] = deque(maxlen=policy.gaps_kept)  # caller's, between sentences
        self._gap_text = ""  # what the caller had said at the current pause

    # --- frames ---------------------------------------------------------------------------

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, InputAudioRawFrame):
            self._audio.add(frame.audio)
            if self._silence is not None:
                self._silence += frame.num_frames / frame.sample_rate
            await self._track_pause()
            await self._end_if_due()
        elif isinstance(frame, EagerTranscriptionFrame):
            if self._paused:
                self._eager = frame.text.strip()
                await self._maybe_score()
                await self._maybe_speculate()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_stopped = True
            self._silence = frame.stop_secs
            if not self._paused:  # a pause too short for early work (TURN_EARLY_SECS ≥ stop)
                await self._begin_pause(transcribe=False)
            await self._maybe_decide()
        elif isinstance(frame, TranscriptionFrame):
            # The segment's early transcript, if any, is now part of the committed text.
            self._committed = f"{self._committed} {frame.text.strip()}".strip()
            self._eager, self._segment_final = "", True
            await self._maybe_score()
            await self._maybe_speculate()
            await self._maybe_decide()
        elif isinstance(frame, NothingHeardFrame):
            # The segment had no words: the turn is what was said before it, weighed anew (the
            # segment's start cleared Smart Turn's score).
            self._segment_final = True
            await self._maybe_score()
            await self._maybe_speculate()
            await self._maybe_decide()
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            # Speech again after the VAD's stop: the turn goes on, after a gap this long.
            if self._silence is not None:
                self._note_gap(self._silence - frame.start_secs)
            self._vad_stopped, self._silence = False, None
            await self._resume()
        return ProcessFrameResult.CONTINUE

    async def _track_pause(self) -> None:
        if self._vad_stopped:
            return
        if not self._paused and self._vad.pause_secs >= self._policy.early_secs:
            await self._begin_pause(transcribe=True)
        elif self._paused and self._vad.speaking:
            # The voice came back before the VAD called speech over.
            await self._resume()

    async def _begin_pause(self, *, transcribe: bool) -> None:
        self._paused = True
        self._segment_final = False
        self._probability = None
        if transcribe:
            await self.push_frame(TranscribeNowFrame(), FrameDirection.UPSTREAM)

    def _text(self) -> str:
        """What the caller has said so far in this turn."""
        return f"{self._committed} {self._eager}".strip()

    def _note_gap(self, secs: float) -> None:
        """The caller went on after `secs` of silence: if that followed a finished-sounding
        sentence, it is one of their gaps between sentences."""
        said = self._gap_text or self._text()
        kind = self._policy.kind(said, self._sentence_end(said))
        if secs > 0 and kind in (Cue.ASKED, Cue.REQUEST, Cue.SAID, Cue.BARE):
            self._gaps.append(secs)
            logger.debug(f"{self}: the caller went on after a {secs:.2f} s gap")

    def _unread(self, text: str) -> bool:
        """Whether the language model's reading of `text` counts and is not yet in."""
        read = self._reading is not None and self._reading[0] == text
        return self._sentences is not None and self._policy.reads(text) and not read

    def _sentence_end(self, text: str) -> float | None:
        reading = self._reading
        return reading[1] if reading is not None and reading[0] == text else None

    def _awaiting(self, text: str) -> bool:
        """Whether the verdict on `text` still waits for evidence."""
        return (self._probability is None and self._policy.needs_model(text)) or self._unread(text)

    async def _maybe_score(self) -> None:
        """Read the words and score the turn's audio, once the transcript leaves the verdict to
        them: the language model first (tens of ms), then Smart Turn."""
        text = self._text()
        if self._scoring is not None or not text or not self._awaiting(text):
            return
        audio = self._audio.audio() if self._probability is None else None
        self._scoring = self.task_manager.create_task(self._score(text, audio), f"{self}::scoring")

    async def _score(self, text: str, audio: np.ndarray | None) -> None:
        if self._unread(text):
            self._reading = (text, await self._read(text))
        metrics = None
        if audio is not None:
            start = time.perf_counter()
            probability = await asyncio.to_thread(self._model.probability, audio)
            self._probability = probability
            metrics = TurnMetricsData(
                processor=str(self),
                is_complete=probability > 0.5,
                probability=probability,
                e2e_processing_time_ms=(time.perf_counter() - start) * 1000,
            )
        # Done: from here on this task may end the turn, whose reset must not cancel it.
        self._scoring = None
        if metrics is not None:
            await self.push_frame(MetricsFrame(data=[metrics]))
        await self._maybe_score()  # the transcript may have changed meanwhile
        await self._maybe_speculate()
        await self._maybe_decide()

    async def _read(self, text: str) -> float | None:
        """The language model's P(a sentence ends after `text`); None if it failed (the turn is
        then decided without it)."""
        assert self._sentences is not None
        try:
            return await asyncio.to_thread(self._sentences.probability, text)
        except Exception as error:  # llama.cpp's failures come in several types
            logger.warning(f"{self}: the sentence-end model failed ({error.__class__.__name__})")
            logger.opt(exception=error).debug("sentence-end model")
            return None

    async def _resume(self) -> None:
        """The caller speaks again: nothing decided at this pause stands."""
        self._paused, self._end_at = False, None
        self._eager = ""
        self._segment_final = False
        self._gap_text = ""
        await self._cancel_tasks()
        await self._withdraw()

    # --- deciding -------------------------------------------------------------------------

    async def _maybe_speculate(self) -> None:
        if self._speculation is not None:
            return
        if not (self._eager or (self._paused and self._segment_final and self._committed)):
            return
        text = self._text()
        if self._awaiting(text):
            return  # the words are still being read, or Smart Turn is still scoring
        if not self._policy.may_speculate(
            text, self._probability, self._vad.room_db, self._sentence_end(text)
        ):
            return
        self._resumption.settle()
        self._speculation = text
        logger.debug(f"{self}: answering speculatively")
        await self.trigger_user_turn_inference_triggered(speculation=UserTurnSpeculation(text))

    async def _maybe_decide(self) -> None:
        if not (self._vad_stopped and self._segment_final and self._committed):
            return
        if self._wait is not None or self._end_at is not None:
            return
        if self._awaiting(self._committed):
            return
        needs_model = self._policy.needs_model(self._committed)
        self._gap_text = self._committed
        self._end_at = self._verdict()
        shown = "-" if self._probability is None else f"{self._probability:.2f}"
        sentence_end = self._sentence_end(self._committed)
        kind = self._policy.kind(self._committed, sentence_end).value
        read = "-" if sentence_end is None else f"{sentence_end:.3f}"
        logger.debug(
            f"{self}: p={shown} sentence end={read} cue={kind} "
            f"ends after {self._end_at:.2f}s of silence"
        )
        if not await self._end_if_due():
            self._wait = self.task_manager.create_task(self._watch(needs_model), f"{self}::wait")

    async def _watch(self, rescore: bool) -> None:
        """While the turn waits: score it again as the silence grows (Smart Turn grows surer
        of a finished sentence with every tenth of a second, which may end it sooner), as long
        as a surer score could end it sooner; and end it anyway if the input stops, so that no
        audio will ever count the silence out."""
        heard, since = self._silence, time.monotonic()
        while True:
            await asyncio.sleep(self._policy.rescore_secs if rescore else _STALLED_INPUT_SECS)
            if self._silence != heard:
                heard, since = self._silence, time.monotonic()
            elif time.monotonic() - since >= _STALLED_INPUT_SECS:
                break  # the input has stopped
            if rescore and self._policy.may_shorten(
                self._committed, self._probability, *self._evidence()
            ):
                self._probability = await asyncio.to_thread(
                    self._model.probability, self._audio.audio()
                )
                end_at = self._verdict()
                if end_at != self._end_at:
                    logger.debug(f"{self}: p={self._probability:.2f}; ends after {end_at:.2f}s")
                    self._end_at = end_at
                if await self._end_if_due():
                    return
        self._wait = None
        await self._end()

    def _evidence(self) -> tuple[deque[float], float | None, float | None]:
        """What the verdict weighs besides the words and Smart Turn: the caller's gaps, the
        room's noise floor and the language model's reading."""
        return self._gaps, self._vad.room_db, self._sentence_end(self._committed)

    def _verdict(self) -> float:
        """Silence after the last word that ends the turn, on what is known now."""
        return self._policy.end_after(self._committed, self._probability, *self._evidence())

    async def _end_if_due(self) -> bool:
        """End the turn once the verdict's silence has been heard (to within a frame) with no
        voice, or hint of it, in the latest window: voice not yet long enough for the VAD's start
        (0.2 s) would be cut into. The VAD's start resumes the turn instead."""
        if self._end_at is None or self._silence is None or self._vad.stirring:
            return False
        if self._silence < self._end_at - _FRAME_SECS:
            return False
        if self._wait is not None and self._wait is not asyncio.current_task():
            await self.task_manager.cancel_task(self._wait)
        self._wait = None
        await self._end()
        return True

    async def _end(self) -> None:
        self._end_at = None
        self._resumption.settle()
        speculation, self._speculation = self._speculation, None
        if speculation is not None and self._match.matches(speculation, self._committed):
            # The answer is already being written and spoken: release it, and run no second.
            await self.trigger_user_turn_finalized(confirms_speculation=True)
            return
        if speculation is not None:
            await self.trigger_user_turn_speculation_cancelled()
        await self.trigger_user_turn_stopped()

    async def _withdraw(self) -> None:
        if self._speculation is not None:
            self._speculation = None
            logger.debug(f"{self}: the caller went on; withdrawing the speculative answer")
            await self.trigger_user_turn_speculation_cancelled()

    async def _cancel_tasks(self) -> None:
        for task in (self._wait, self._scoring):
            if task is not None and not task.done():
                await self.task_manager.cancel_task(task)
        self._wait = self._scoring = None
        self._probability = None

    # --- turn boundaries ------------------------------------------------------------------

    async def _reset(self) -> None:
        await self._cancel_tasks()
        await self._withdraw()
        self._committed = self._eager = self._gap_text = ""
        self._reading = None
        self._paused = self._vad_stopped = self._segment_final = False
        self._end_at = None

    async def handle_user_turn_started(self) -> None:
        self._audio.restart(keep_secs=_PRE_SPEECH_SECS + self._vad.params.start_secs)
        if self._resumption.pending and self._silence is not None:
            # The caller went on after the answer began: that pause was a gap, not an end.
            self._note_gap(self._silence)
        self._silence = None
        await self._reset()

    async def handle_user_turn_stopped(self) -> None:
        gap_text, silence = self._committed, self._silence
        await self._reset()
        # The silence goes on being counted: if the caller resumes as the answer begins, it
        # was one of their gaps.
        self._gap_text, self._silence = gap_text, silence

    async def cleanup(self) -> None:
        """The call ends: nothing of this turn outlives it."""
        await self._cancel_tasks()
        await super().cleanup()


def turn_strategies(
    config: CallConfig,
    vad: PauseAwareVAD,
    policy: TurnPolicy,
    model: SmartTurnModel | None = None,
    context: LLMContext | None = None,
    sentences: SentenceEndModel | None = None,
    playout: Playout | None = None,
) -> UserTurnStrategies:
    """The stop strategy TURN_DETECTION names. Start: Pipecat's (VAD or transcript); with the
    hybrid stop, also the caller going on just after the answer began, and, given the call's
    `playout`, their voice over the bot judged a backchannel or an interruption
    (bot/overlap.py)."""
    from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams

    if config.turn_detection == "silence":
        stop = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=config.turn_silence_secs)
        return UserTurnStrategies(stop=[stop])
    if config.turn_detection == "smart-turn":
        analyzer = LocalSmartTurnAnalyzerV3(params=SmartTurnParams(stop_secs=config.turn_stop_secs))
        return UserTurnStrategies(stop=[TurnAnalyzerUserTurnStopStrategy(turn_analyzer=analyzer)])
    resumption = Resumption(context)
    overlap = []
    if playout is not None and policy.backchannel_secs > 0 and policy.overlap_voice_secs > 0:
        overlap = [OverlapStartStrategy(vad=vad, policy=policy, playout=playout)]
    return UserTurnStrategies(
        start=[
            ResumeStartStrategy(vad=vad, policy=policy, resumption=resumption),
            *overlap,
            VADUserTurnStartStrategy(),
            TranscriptionUserTurnStartStrategy(),
        ],
        stop=[
            HybridTurnStopStrategy(
                vad=vad,
                model=model or SmartTurnModel(),
                policy=policy,
                resumption=resumption,
                sentences=sentences,
            )
        ],
    )
