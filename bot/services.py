"""STT, LLM and TTS services for one call, built from Settings and the process-wide models."""

from __future__ import annotations

from typing import Any

import aiohttp
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.stt_service import STTService
from pipecat.services.whisper.stt import WhisperSTTService, WhisperSTTServiceMLX
from pipecat.transcriptions.language import Language

from bot.config import Settings
from bot.models import SpeechModel
from bot.tts import KitTTSService

# Faster than faster-whisper's defaults for short spoken turns, at no cost in accuracy on them:
# greedy decoding, no timestamps, and no conditioning on text from an earlier segment.
_FAST_DECODING = {"beam_size": 1, "without_timestamps": True, "condition_on_previous_text": False}


class _FastDecoding:
    """A shared WhisperModel whose `transcribe` uses `_FAST_DECODING`."""

    def __init__(self, model: Any):
        self._model = model

    def transcribe(self, audio: Any, **kwargs: Any) -> Any:
        return self._model.transcribe(audio, **{**_FAST_DECODING, **kwargs})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class SharedWhisperSTTService(WhisperSTTService):
    """Pipecat's Whisper service on the process's shared model, not one loaded per call."""

    def __init__(self, *, speech: SpeechModel, **kwargs: Any):
        self._shared_model = speech.model
        super().__init__(**kwargs)

    def _load(self) -> None:
        self._model = _FastDecoding(self._shared_model)
        unsupported = self._unsupported_language()
        if unsupported:
            raise ValueError(unsupported)


def _whisper_language(settings: Settings) -> Language:
    return Language.ZH if settings.tts_language == "zh-cn" else Language(settings.tts_language)


def make_stt(settings: Settings, speech: SpeechModel) -> STTService:
    """Whisper for one call, on the process's already loaded model."""
    language = _whisper_language(settings)
    if speech.model is None:
        return WhisperSTTServiceMLX(
            settings=WhisperSTTServiceMLX.Settings(model=speech.name, language=language)
        )
    return SharedWhisperSTTService(
        speech=speech,
        settings=WhisperSTTService.Settings(model=speech.name, language=language),
        # Measured transcription time on a 2-core CPU is well under this; Pipecat budgets turn
        # detection with it (and assumes a full second when it is not given).
        ttfs_p99_latency=0.6,
    )


def make_llm(settings: Settings) -> OpenAILLMService:
    """Any OpenAI-compatible server: Ollama, vLLM, or the embedded llama.cpp server."""
    return OpenAILLMService(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        settings=OpenAILLMService.Settings(
            model=settings.llm_model, max_tokens=settings.llm_max_tokens
        ),
    )


def make_tts(settings: Settings, session: aiohttp.ClientSession) -> KitTTSService:
    return KitTTSService(
        base_url=settings.xtts_base_url,
        voice=settings.tts_voice,
        language=settings.tts_language,
        session=session,
    )
