"""Whisper for one call on the process's shared model, decoded for short spoken turns.

faster-whisper pads every clip to Whisper's 30-second window, so a 2-second question costs as
much encoder time as 30 seconds of speech (about 340 ms of 430 ms for tiny.en on a 2-core CPU).
CTranslate2's encoder accepts a shorter window: a turn plus 3 s of silence encodes in a tenth of
the time. Decoded that way, Whisper tends to repeat the sentence once it runs out of audio; a
repetition penalty and a length cap from the clip's duration stop that. On the kit's recorded
questions and 6 to 8 s answers the transcripts match the full-window ones (tests/unit/test_stt.py).
Set WHISPER_TRIM_WINDOW=false for the stock decoding.

Early transcription: when the turn strategy hears the caller pause (`TranscribeNowFrame`, from
bot/turns.py), the segment so far is transcribed at once, ahead of the VAD's stop, and announced
as an `EagerTranscriptionFrame`. When the VAD then stops and nothing but silence came in
between, that result is the segment's transcript: the same audio, so the same words, and Whisper
is off the turn's critical path. If the caller went on, it is dropped; and if Whisper wrote no
end to the sentence, the segment is heard again whole: a soft last word ("why do cats purr")
the VAD took for silence is often what it lacked (seen in the turn study). A segment in which
Whisper finds no words (a breath, a click) is announced as such (`NothingHeardFrame`), so that
the turn strategy does not wait for a transcript that never comes.

Words so far: while the caller speaks, every LLM_READ_AHEAD_SECS of the segment is transcribed
(one at a time, in the background) and sent on as a `WordsSoFarFrame`, for the LLM alone: it
reads them into its cache, so that a large model on a CPU has only the last few words to read
when the turn ends (bot/llm.py, `read_ahead`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from pipecat.frames.frames import (
    EagerTranscriptionFrame,
    Frame,
    InputAudioRawFrame,
    SystemFrame,
    TranscriptionFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.whisper.stt import WhisperSTTService

from bot import pipecat_compat

SAMPLE_RATE = 16000  # what Whisper hears, and so every call's input (the page's too)
_MARGIN_SECS = 3.0  # silence after the turn: Whisper needs to "see" the speech end
_MAX_TRIMMED_SECS = 25.0  # longer clips take the full window anyway
_STOCK_OPTIONS = {"beam_size": 1, "without_timestamps": True, "condition_on_previous_text": False}


@dataclass(frozen=True)
class Segment:
    """What Pipecat reads from a faster-whisper segment."""

    text: str
    no_speech_prob: float


class TurnDecoder:
    """A shared faster-whisper model whose `transcribe` is tuned for short turns.

    Thread-safe as the model is: CTranslate2 queues concurrent calls from several calls' threads.
    """

    def __init__(self, model: Any, *, trim_window: bool = True):
        self._model = model
        self._trim = trim_window
        self._tokenizers: dict[str, Any] = {}

    def windowed(self, trim_window: bool) -> TurnDecoder:
        """The same model, decoding with or without the trimmed window (one call's choice)."""
        view = TurnDecoder(self._model, trim_window=trim_window)
        view._tokenizers = self._tokenizers
        return view

    @property
    def supported_languages(self) -> list[str]:
        return self._model.supported_languages

    def transcribe(self, audio: np.ndarray, language: str | None = None, **options: Any):
        """Same shape as faster-whisper's: (segments, info)."""
        plain = not any(options.get(k) for k in ("hotwords", "initial_prompt"))
        if self._trim and plain and language and len(audio) < _MAX_TRIMMED_SECS * SAMPLE_RATE:
            return [self._trimmed(audio, language)], None
        stock = {k: v for k, v in options.items() if v is not None}
        return self._model.transcribe(audio, language=language, **{**_STOCK_OPTIONS, **stock})

    def _tokenizer(self, language: str) -> Any:
        if language not in self._tokenizers:
            from faster_whisper.tokenizer import Tokenizer

            self._tokenizers[language] = Tokenizer(
                self._model.hf_tokenizer,
                self._model.model.is_multilingual,
                task="transcribe",
                language=language,
            )
        return self._tokenizers[language]

    def _trimmed(self, audio: np.ndarray, language: str) -> Segment:
        import ctranslate2

        tokenizer = self._tokenizer(language)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        padded = np.concatenate([audio, np.zeros(int(_MARGIN_SECS * SAMPLE_RATE), np.float32)])
        features = self._model.feature_extractor(padded, padding=0)[None]
        result = self._model.model.generate(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32)),
            [prompt],
            beam_size=1,
            repetition_penalty=1.3,
            max_length=int(12 + 8 * len(audio) / SAMPLE_RATE),  # ~4 tokens/s spoken, doubled
            return_no_speech_prob=True,
        )[0]
        text = tokenizer.decode(result.sequences_ids[0]).strip()
        return Segment(text, result.no_speech_prob)


class TranscribeNowFrame(SystemFrame):
    """Upstream, from the turn strategy: the caller paused; transcribe what they said so far."""


class WordsSoFarFrame(SystemFrame):
    """Downstream, to the LLM: what the caller has said so far in a turn still going on, so
    that the LLM can read it ahead (bot/llm.py, `read_ahead`)."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text


class NothingHeardFrame(SystemFrame):
    """Downstream, to the turn strategy: Whisper wrote no words for the segment the VAD just
    ended (a breath, a click, a cough), so the turn's words are what came before."""


# After an early transcript, what came in until the VAD's stop counts as silence below this
# share of the segment's loudest sample (Whisper hears the line as it is, room noise and all).
_SILENCE_SHARE = 0.2
_SENTENCE_ENDS = (".", "?", "!", '."', '?"', '!"')


@dataclass
class _Early:
    """A transcription started at a pause: the audio it read and the frames it produced."""

    pcm: bytes
    task: asyncio.Task[list[Frame]]

    async def ended(self) -> bool:
        """Whether Whisper wrote the end of a sentence (waits for the transcription)."""
        texts = [f.text.strip() for f in await self.task if isinstance(f, TranscriptionFrame)]
        return bool(texts) and texts[-1].endswith(_SENTENCE_ENDS)

    def covers(self, pcm: bytes, tail: int) -> bool:
        """Whether `pcm` (the segment at the VAD's stop, then `tail` bytes of padding) is this
        audio followed by silence only."""
        if not pcm.startswith(self.pcm):
            return False
        said = np.frombuffer(self.pcm, dtype="<i2")
        after = np.frombuffer(pcm[len(self.pcm) : len(pcm) - tail], dtype="<i2")
        if not after.size:
            return True
        loudest = np.abs(said).max(initial=0)
        return np.abs(after).max(initial=0) < _SILENCE_SHARE * max(int(loudest), 1)


class SharedWhisperSTTService(WhisperSTTService):
    """Pipecat's Whisper service on the process's shared model, not one loaded per call, with
    early transcription at the caller's pauses (see the module's docstring)."""

    def __init__(self, *, decoder: TurnDecoder, words_so_far_secs: float = 0.0, **kwargs: Any):
        """`words_so_far_secs`: how often the words of a turn still going on are transcribed
        and sent on (`WordsSoFarFrame`); 0: never."""
        self._decoder = decoder
        self._early: _Early | None = None
        self._words_so_far_secs = words_so_far_secs
        self._words_heard_at = 0.0  # seconds of the segment the last words so far covered
        self._words_task: asyncio.Task | None = None
        super().__init__(**kwargs)

    def _load(self) -> None:
        # Pipecat's private model loading (bot/pipecat_compat.py). The decoder stands in for the
        # base class's WhisperModel: it has the same transcribe().
        pipecat_compat.use_whisper_model(self, self._decoder)

    async def cleanup(self) -> None:
        await self._drop_early()
        if self._words_task is not None:
            await self.cancel_task(self._words_task)
        await super().cleanup()

    async def _drop_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            await self.cancel_task(early.task)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscribeNowFrame):
            await self._transcribe_early()

    async def process_audio_frame(self, frame: InputAudioRawFrame, direction: FrameDirection):
        await super().process_audio_frame(frame, direction)
        if not self._words_so_far_secs:
            return
        if not pipecat_compat.user_speaking(self):
            self._words_heard_at = 0.0
            return
        segment = pipecat_compat.segment_audio(self)
        heard = len(segment) / (2 * self.sample_rate)
        idle = self._words_task is None or self._words_task.done()
        if idle and heard - self._words_heard_at >= self._words_so_far_secs:
            self._words_heard_at = heard
            pcm = bytes(segment) + pipecat_compat.trailing_silence(self)
            self._words_task = self.create_task(self._words_so_far(pcm))

    async def _words_so_far(self, pcm: bytes) -> None:
        """Transcribe the turn so far and send the words on (not a transcript: nothing but the
        LLM's read-ahead uses them)."""
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        settings = cast(STTSettings, self.settings)  # Pipecat types the property loosely
        language = str(settings.language) if settings.language else None

        def transcribe() -> str:
            segments, _ = self._decoder.transcribe(audio, language=language)
            return " ".join(s.text.strip() for s in segments).strip()

        if text := await asyncio.to_thread(transcribe):
            await self.push_frame(WordsSoFarFrame(text))

    async def _transcribe_early(self) -> None:
        await self._drop_early()
        pcm = bytes(pipecat_compat.segment_audio(self))
        self._early = _Early(pcm, self.create_task(self._early_frames(pcm)))

    async def _early_frames(self, pcm: bytes) -> list[Frame]:
        frames = [
            frame async for frame in super().run_stt(pcm + pipecat_compat.trailing_silence(self))
        ]
        for frame in frames:
            if isinstance(frame, TranscriptionFrame):
                eager = EagerTranscriptionFrame(
                    frame.text, frame.user_id, frame.timestamp, frame.language
                )
                await self.push_frame(eager)
        return frames

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        early = self._early
        if (
            early is not None
            and early.covers(audio, len(pipecat_compat.trailing_silence(self)))
            and await early.ended()
        ):
            self._early = None
            for frame in await early.task:
                yield frame
            return
        await self._drop_early()
        heard = False
        async for frame in super().run_stt(audio):
            heard = heard or isinstance(frame, TranscriptionFrame)
            yield frame
        if not heard:
            yield NothingHeardFrame()
