"""When the caller has finished speaking: Smart Turn v3's verdict and what Whisper wrote, weighed
at the first pause, with the answer generated speculatively while the turn is still open.

Pipecat's Smart Turn strategy trusts the model alone. On unfamiliar and synthetic voices it
judges many complete questions unfinished (probabilities of 0.05 to 0.5 for "Why is the sky
blue?"), and such a turn then waits out the 1.5 s fallback. Whisper punctuates what it hears, and
that is strong evidence the model lacks: a question mark ends the turn whatever the probability,
while "I was wondering..." or "So my question is" keeps it open for the rest of the sentence.

One turn, from the caller's last word (T):
- T + TURN_EARLY_SECS of silence (a pause): Whisper transcribes what was said so far (the STT
  service, asked with `TranscribeNowFrame`). Smart Turn then scores the turn's audio only if the
  text leaves the verdict to it: a question mark ends the turn and an opening ("Can you tell me")
  keeps it open whatever the model says. Run one after the other, not side by side, the two do
  not share the CPU: on two cores Whisper alone takes ~100 ms, ~160-200 ms beside Smart Turn.
- With the transcript (and the probability, where it counts), and a turn likely to end soon
  (`TurnPolicy.may_speculate`), the LLM starts on that transcript; Pipecat's speculation gate
  holds its answer back until the turn is confirmed.
- T + VAD_STOP_SECS (the VAD's stop): the committed transcript is the early one, reused if nothing
  was said since. `TurnPolicy` decides: end now (the held answer is released at once), or wait
  longer, scoring the turn again every `rescore_secs` as the silence grows (Smart Turn grows
  surer of a finished sentence with every tenth of a second of silence after it). Speech before
  the decision withdraws the speculative answer (and frees its llama.cpp slot): the caller never
  hears it.
"""

from __future__ import annotations

import asyncio
import re
import time
from enum import Enum

import numpy as np
from loguru import logger
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState
from pipecat.frames.frames import (
    EagerTranscriptionFrame,
    Frame,
    InputAudioRawFrame,
    MetricsFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import TurnMetricsData
from pipecat.processors.frame_processor import FrameDirection
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_stop import (
    BaseUserTurnStopStrategy,
    NormalizedMatch,
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from bot.config import Settings
from bot.denoise import Denoiser, denoiser
from bot.stt import SAMPLE_RATE, TranscribeNowFrame
from bot.tuning import Tuning

_SMART_TURN_PACKAGE, _SMART_TURN_FILE = (
    "pipecat.audio.turn.smart_turn.data",
    "smart-turn-v3.2-cpu.onnx",
)
# Smart Turn reads the last 8 s; the turn's audio starts this long before its first speech.
_SMART_TURN_SECS = 8.0
_PRE_SPEECH_SECS = 0.5
_FRAME_SECS = 0.02  # a transport's audio frame: a wait is heard out to within one
_STALLED_INPUT_SECS = 1.0  # no audio this long after a wait's end: the input has stopped


class Cue(Enum):
    """What the end of a transcript says about the turn."""

    ASKED = "asked"  # a question or exclamation mark: finished
    SAID = "said"  # a full stop: probably finished
    OPENING = "opening"  # "I was wondering", "Can you tell me": the question is still to come
    TRAILING = "trailing"  # a comma, dash or ellipsis: the caller is mid-sentence
    DANGLING = "dangling"  # ends on a word few sentences end on ("and", "the", "is", "um")
    BARE = "bare"  # no punctuation: the transcript alone cannot tell


# Words a spoken English sentence rarely ends on, unless it is a question (which Whisper marks):
# articles, conjunctions, a few prepositions, auxiliaries, possessives and fillers.
DANGLING = frozenset(
    {
        *("a", "an", "the", "and", "or", "but", "because", "if", "when", "while", "than"),
        *("of", "to", "with", "from", "about", "into", "for"),
        *("is", "are", "was", "were", "am", "be", "can", "could", "will", "would", "should"),
        *("my", "your", "his", "her", "our", "their"),
        *("um", "uh", "er", "erm", "hmm"),
    }
)
_TRAILING = (",", ";", ":", "-", "—", "–", "…", "...")
# Openings that announce the question still to come. Said alone, with whatever punctuation
# Whisper gives them ("I was wondering." is common), the caller has not finished, whatever Smart
# Turn says (p 0.6 seen for "I was wondering", 0.96 for "Can you tell me" on synthetic voices).
PREAMBLES = (
    *("i was wondering", "i am wondering", "i'm wondering", "i wonder"),
    *("my question is", "the question is", "i have a question", "let me ask you"),
    *("i want to know", "i'd like to know", "i would like to know"),
    *("can you tell me", "could you tell me", "tell me"),
)


def cue(text: str) -> Cue:
    """Classify the end of a transcript."""
    text = text.strip().strip("\"'")
    words = re.findall(r"[a-z']+", text.lower())
    if (" " + " ".join(words[-5:])).endswith(tuple(f" {p}" for p in PREAMBLES)):
        return Cue.OPENING
    if not text or text.endswith(_TRAILING):
        return Cue.TRAILING
    if text.endswith(("?", "!")):
        return Cue.ASKED
    if words and words[-1] in DANGLING:
        return Cue.DANGLING
    return Cue.SAID if text.endswith(".") else Cue.BARE


class TurnPolicy:
    """How much longer to wait, given the turn's transcript and Smart Turn's probability.

    Smart Turn alone cannot be trusted with words that stop mid-sentence ("When I went to the
    park...", "My favourite animal is the"): of 23 such pauses in `scripts/turn_study.py`
    (sentences said whole by synthetic voices, cut off mid-way) it scored 10 above 0.6 after
    0.2 s of silence and 20 before 0.75 s, as it scores finished questions. Such text therefore
    waits `unfinished_wait` however sure the model is, which a pause to think (0.75 s) fits in,
    and longer while the model agrees that it is unfinished.

    The thresholds were tuned on generated speech (three engines, many voices and speeds, noise,
    pauses, sentences cut off mid-way), not on the tests' recordings.
    """

    def __init__(
        self, *, open_wait: float = 1.5, unsure_wait: float = 1.0, unfinished_wait: float = 0.8
    ):
        self.open_wait = open_wait  # the caller sounds mid-sentence
        self.unsure_wait = unsure_wait  # neither the text nor the model is sure
        self.unfinished_wait = unfinished_wait  # the words stop mid-sentence, the voice does not
        self.said_probability = 0.3  # a full stop, and the model does not object strongly
        self.bare_probability = 0.6  # no punctuation
        self.dangling_probability = 0.85  # a word few sentences end on: only a sure model counts
        # Whisper also writes "..." where a slow voice trails off at the end of a question; the
        # model, scored again as the silence grows, is then sure (0.81 after 0.4 s of silence
        # for the slowest voice of the benchmark's set).
        self.trailing_probability = 0.6
        self.rescore_secs = 0.05  # while waiting, score the turn again this often

    def needs_model(self, text: str) -> bool:
        """Whether Smart Turn's probability can change the verdict on `text`."""
        return cue(text) not in (Cue.ASKED, Cue.OPENING)

    def wait(self, text: str, probability: float | None) -> float:
        """Seconds of further silence before the turn ends; 0 ends it now. `probability` may be
        None only where the text alone decides (`needs_model` is false)."""
        kind = cue(text)
        if kind is Cue.ASKED:
            return 0.0
        if kind is Cue.OPENING:
            return self.open_wait
        if probability is None:
            raise ValueError(f"a {kind.value!r} transcript needs Smart Turn's probability")
        match kind:
            case Cue.TRAILING:
                sure = probability >= self.trailing_probability
                return self.unfinished_wait if sure else self.open_wait
            case Cue.DANGLING:
                sure = probability >= self.dangling_probability
                return self.unfinished_wait if sure else self.open_wait
            case Cue.SAID:
                return 0.0 if probability >= self.said_probability else self.unsure_wait
            case _:  # BARE: Whisper punctuates what sounds finished
                sure = probability >= self.bare_probability
                return self.unfinished_wait if sure else self.unsure_wait

    def may_speculate(self, text: str, probability: float | None) -> bool:
        """Worth answering before the turn is confirmed: it is likely to end soon."""
        return self.wait(text, probability) < self.open_wait


class PauseAwareVAD(SileroVADAnalyzer):
    """Silero VAD that also says how long the voice has been silent within speech.

    The VAD calls speech over after `stop_secs` (0.2 s); the turn strategy starts its work at
    the first `TURN_EARLY_SECS` of that silence, on the same analysis rather than a second VAD.
    With `denoise`, it hears the line through RNNoise (bot/denoise.py), in its own thread; the
    frames it is given, and so Whisper and Smart Turn, stay as they are.
    """

    def __init__(self, *, denoise: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._denoise = denoise
        self._denoiser: Denoiser | None = None

    def set_sample_rate(self, sample_rate: int) -> None:
        super().set_sample_rate(sample_rate)
        if self._denoise:
            if self._denoiser is not None:
                self._denoiser.close()
            self._denoiser = denoiser(self.sample_rate)

    def _run_analyzer(self, buffer: bytes) -> VADState:
        if self._denoiser is not None:
            buffer = self._denoiser(buffer)
        return super()._run_analyzer(buffer)

    async def cleanup(self) -> None:
        if self._denoiser is not None:
            # In the VAD's thread, so after any analysis still queued there.
            await asyncio.get_running_loop().run_in_executor(self._executor, self._denoiser.close)
        await super().cleanup()

    @property
    def speaking(self) -> bool:
        """Voice in the latest window (and the stretch of speech confirmed)."""
        return self._vad_state is VADState.SPEAKING

    @property
    def hearing(self) -> bool:
        """Voice in the latest window, confirmed as speech or not yet (the VAD's start)."""
        return self._vad_state in (VADState.STARTING, VADState.SPEAKING)

    @property
    def pause_secs(self) -> float:
        """Silence so far inside a stretch of speech; 0 while speaking or before any speech."""
        if self._vad_state is not VADState.STOPPING:
            return 0.0
        return self._vad_stopping_count * self.num_frames_required() / self.sample_rate


def call_vad(settings: Settings, stop_secs: float) -> PauseAwareVAD:
    """The VAD a call hears with: the settings' Silero thresholds, through RNNoise if RNNOISE."""
    return PauseAwareVAD(
        denoise=settings.rnnoise,
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
        return float(self._predict_endpoint(audio)["probability"])


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


class HybridTurnStopStrategy(BaseUserTurnStopStrategy):
    """Ends the caller's turn on Smart Turn's probability and Whisper's transcript together,
    answering speculatively from the first pause (see the module's docstring)."""

    def __init__(
        self,
        *,
        vad: PauseAwareVAD,
        model: SmartTurnModel,
        policy: TurnPolicy,
        early_secs: float,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._vad = vad
        self._model = model
        self._policy = policy
        self._early_secs = early_secs
        self._match = NormalizedMatch()
        self._audio = TurnAudio()
        self._committed = ""  # final transcripts of this turn's segments
        self._eager = ""  # the current segment's early transcript
        self._scoring: asyncio.Task | None = None
        self._probability: float | None = None
        self._paused = False
        self._vad_stopped = False
        self._segment_final = False
        self._speculation: str | None = None
        self._wait: asyncio.Task | None = None
        # A wait counts heard audio, not the clock: frames that queue behind a busy event loop
        # would otherwise let the clock run out while the caller's next words are still unread.
        self._heard = 0.0  # seconds of input audio since the wait began
        self._due: float | None = None  # the wait's length, once the clock has run it out

    # --- frames ---------------------------------------------------------------------------

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, InputAudioRawFrame):
            self._audio.add(frame.audio)
            self._heard += frame.num_frames / frame.sample_rate
            await self._track_pause()
            if self._due is not None:
                await self._end_if_due()
        elif isinstance(frame, EagerTranscriptionFrame):
            if self._paused:
                self._eager = frame.text.strip()
                await self._maybe_score()
                await self._maybe_speculate()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_stopped = True
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
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            # Speech again after the VAD's stop: the turn goes on.
            self._vad_stopped = False
            await self._resume()
        return ProcessFrameResult.CONTINUE

    async def _track_pause(self) -> None:
        if self._vad_stopped:
            return
        if not self._paused and self._vad.pause_secs >= self._early_secs:
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

    async def _maybe_score(self) -> None:
        """Score the turn's audio, once the transcript leaves the verdict to Smart Turn."""
        text = self._text()
        if self._scoring is not None or self._probability is not None or not text:
            return
        if self._policy.needs_model(text):
            self._scoring = self.task_manager.create_task(
                self._score(self._audio.audio()), f"{self}::smart_turn"
            )

    async def _score(self, audio: np.ndarray) -> None:
        start = time.perf_counter()
        probability = await asyncio.to_thread(self._model.probability, audio)
        # Done: from here on this task may end the turn, whose reset must not cancel it.
        self._scoring, self._probability = None, probability
        await self.push_frame(
            MetricsFrame(
                data=[
                    TurnMetricsData(
                        processor=str(self),
                        is_complete=probability > 0.5,
                        probability=probability,
                        e2e_processing_time_ms=(time.perf_counter() - start) * 1000,
                    )
                ]
            )
        )
        await self._maybe_speculate()
        await self._maybe_decide()

    async def _resume(self) -> None:
        """The caller speaks again: nothing decided at this pause stands."""
        self._paused, self._due = False, None
        self._eager = ""
        self._segment_final = False
        await self._cancel_tasks()
        await self._withdraw()

    # --- deciding -------------------------------------------------------------------------

    async def _maybe_speculate(self) -> None:
        if self._speculation is not None:
            return
        if not (self._eager or (self._paused and self._segment_final and self._committed)):
            return
        text = self._text()
        if self._probability is None and self._policy.needs_model(text):
            return  # Smart Turn is still scoring
        if not self._policy.may_speculate(text, self._probability):
            return
        self._speculation = text
        logger.debug(f"{self}: answering speculatively")
        await self.trigger_user_turn_inference_triggered(speculation=UserTurnSpeculation(text))

    async def _maybe_decide(self) -> None:
        if not (self._vad_stopped and self._segment_final and self._committed):
            return
        probability = self._probability
        if self._wait is not None or (
            probability is None and self._policy.needs_model(self._committed)
        ):
            return
        wait = self._policy.wait(self._committed, probability)
        shown = "-" if probability is None else f"{probability:.2f}"
        logger.debug(f"{self}: p={shown} cue={cue(self._committed).value} wait={wait}s")
        if wait == 0:
            await self._end()
        else:
            self._heard = 0.0
            self._wait = self.task_manager.create_task(self._end_after(wait), f"{self}::wait")

    async def _end_after(self, secs: float) -> None:
        """Wait up to `secs` more, scoring the turn again as the silence grows: Smart Turn grows
        surer of a finished sentence with every tenth of a second of silence after it, and a
        surer verdict shortens the wait (to none, or to `unfinished_wait`)."""
        start = time.monotonic()
        deadline = start + secs
        rescore = self._policy.needs_model(self._committed)  # an opening just waits
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(self._policy.rescore_secs, left) if rescore else left)
            if not rescore or time.monotonic() >= deadline:
                break
            probability = await asyncio.to_thread(self._model.probability, self._audio.audio())
            self._probability = probability
            wait = self._policy.wait(self._committed, probability)
            if wait < secs:  # each cue has two waits: this is its shorter one
                logger.debug(f"{self}: p={probability:.2f} after more silence; wait={wait}s")
                deadline, rescore = min(deadline, start + wait), False
        self._due = deadline - start
        if await self._end_if_due():
            return
        # The rest of the wait is heard as the frames come in (`_end_if_due`); if none come,
        # the input has stopped, and the turn ends anyway.
        await asyncio.sleep(_STALLED_INPUT_SECS)
        self._wait, self._due = None, None
        await self._end()

    async def _end_if_due(self) -> bool:
        """End the turn once the wait's length of audio has been heard (to within a frame)
        with no voice in the latest frame: voice not yet long enough for the VAD's start
        (0.2 s) would be cut into. The VAD's start resumes the turn instead."""
        if self._due is None or self._heard < self._due - _FRAME_SECS or self._vad.hearing:
            return False
        if self._wait is not None and self._wait is not asyncio.current_task():
            await self.task_manager.cancel_task(self._wait)
        self._wait, self._due = None, None
        await self._end()
        return True

    async def _end(self) -> None:
        speculation, self._speculation = self._speculation, None
        if speculation is not None and self._match.matches(speculation, self._committed):
            # The answer is already being written: release it, and run no second inference.
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
        self._committed = self._eager = ""
        self._paused = self._vad_stopped = self._segment_final = False
        self._due = None

    async def handle_user_turn_started(self) -> None:
        self._audio.restart(keep_secs=_PRE_SPEECH_SECS + self._vad.params.start_secs)
        await self._reset()

    async def handle_user_turn_stopped(self) -> None:
        await self._reset()

    async def cleanup(self) -> None:
        """The call ends: nothing of this turn outlives it."""
        await self._cancel_tasks()
        await super().cleanup()


def turn_strategies(
    tuning: Tuning, vad: PauseAwareVAD, model: SmartTurnModel | None = None
) -> UserTurnStrategies:
    """The stop strategy TURN_DETECTION names (start: Pipecat's default, VAD or transcript)."""
    from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams

    if tuning.turn_detection == "silence":
        stop = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=tuning.turn_silence_secs)
    elif tuning.turn_detection == "smart-turn":
        analyzer = LocalSmartTurnAnalyzerV3(params=SmartTurnParams(stop_secs=tuning.turn_stop_secs))
        stop = TurnAnalyzerUserTurnStopStrategy(turn_analyzer=analyzer)
    else:
        stop = HybridTurnStopStrategy(
            vad=vad,
            model=model or SmartTurnModel(),
            policy=TurnPolicy(open_wait=tuning.turn_stop_secs),
            early_secs=tuning.turn_early_secs,
        )
    return UserTurnStrategies(stop=[stop])
