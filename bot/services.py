"""STT, LLM and TTS services for one call, built from Settings and the process-wide models."""

from __future__ import annotations

import aiohttp
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.services.whisper.stt import WhisperSTTService, WhisperSTTServiceMLX
from pipecat.services.xtts.tts import XTTSService
from pipecat.transcriptions.language import Language

from bot.answers import AnswerGuard
from bot.call_config import CallConfig
from bot.config import Settings
from bot.llm import KitLLMService
from bot.models import SpeechModel
from bot.options import CallOptions
from bot.stt import SharedWhisperSTTService
from bot.tts import KitTTSService


def _whisper_language(code: str) -> Language:
    return Language.ZH if code == "zh-cn" else Language(code)


def make_stt(options: CallOptions, speech: SpeechModel, config: CallConfig) -> STTService:
    """Whisper for one call, on the process's already loaded model (and, every
    `config.read_ahead_secs` of a turn, its words so far, for the LLM to read ahead)."""
    language = _whisper_language(options.language)
    if speech.decoder is None:
        return WhisperSTTServiceMLX(
            settings=WhisperSTTServiceMLX.Settings(model=speech.name, language=language)
        )
    return SharedWhisperSTTService(
        decoder=speech.decoder.windowed(config.trim_window),
        words_so_far_secs=config.read_ahead_secs,
        settings=WhisperSTTService.Settings(model=speech.name, language=language),
        # Pipecat budgets turn detection with this (and assumes a full second when not given);
        # trimmed-window tiny.en takes 0.1 to 0.3 s on a 2-core CPU, larger models more.
        ttfs_p99_latency=0.5,
    )


def make_llm(
    settings: Settings, slot: int | None = None, context: LLMContext | None = None
) -> KitLLMService:
    """Any OpenAI-compatible server: Ollama, vLLM, or the embedded llama.cpp server (`slot`:
    the llama.cpp slot this call keeps to; `context`: the call's conversation, which the caller's
    words are read ahead after)."""
    return KitLLMService(
        slot=slot,
        context=context,
        guard=AnswerGuard(
            max_words=settings.bot_max_answer_words,
            max_sentences=settings.bot_max_answer_sentences,
        ),
        timeout_secs=settings.llm_timeout_secs,
        filler=settings.bot_filler,
        filler_secs=settings.llm_filler_secs,
        history_turns=settings.bot_history_turns,
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        settings=KitLLMService.Settings(
            model=settings.llm_model,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            frequency_penalty=settings.llm_frequency_penalty,
            presence_penalty=settings.llm_presence_penalty,
        ),
    )


def make_tts(
    settings: Settings, options: CallOptions, session: aiohttp.ClientSession, config: CallConfig
) -> TTSService:
    if config.stock_tts:
        return XTTSService(
            base_url=settings.xtts_base_url,
            aiohttp_session=session,
            settings=XTTSService.Settings(
                voice=options.voice, language=_whisper_language(options.language)
            ),
        )
    return KitTTSService(
        base_url=settings.xtts_base_url,
        voice=options.voice,
        language=options.language,
        session=session,
        timeout_secs=settings.tts_timeout_secs,
    )
