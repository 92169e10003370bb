"""STT, LLM and TTS services for one call, built from Settings and the process-wide models."""

from __future__ import annotations

import aiohttp
from loguru import logger
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.stt_service import STTService
from pipecat.services.whisper.stt import WhisperSTTService, WhisperSTTServiceMLX
from pipecat.transcriptions.language import Language

from bot.config import Settings
from bot.models import SpeechModel
from bot.options import CallOptions
from bot.stt import SharedWhisperSTTService
from bot.tts import KitTTSService

_PRIME_TIMEOUT = aiohttp.ClientTimeout(total=120)  # a cold Ollama model load takes a while


def _whisper_language(code: str) -> Language:
    return Language.ZH if code == "zh-cn" else Language(code)


def make_stt(options: CallOptions, speech: SpeechModel) -> STTService:
    """Whisper for one call, on the process's already loaded model."""
    language = _whisper_language(options.language)
    if speech.decoder is None:
        return WhisperSTTServiceMLX(
            settings=WhisperSTTServiceMLX.Settings(model=speech.name, language=language)
        )
    return SharedWhisperSTTService(
        decoder=speech.decoder,
        settings=WhisperSTTService.Settings(model=speech.name, language=language),
        # Pipecat budgets turn detection with this (and assumes a full second when not given);
        # trimmed-window tiny.en takes 0.1 to 0.3 s on a 2-core CPU, larger models more.
        ttfs_p99_latency=0.5,
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


async def prime_llm(session: aiohttp.ClientSession, settings: Settings, prompt: str) -> None:
    """Have the LLM read the persona and greeting before the caller's first turn.

    llama.cpp and vLLM then reuse that prompt prefix from their cache, and Ollama loads the model
    if it was idle, so the first answer is as quick as the later ones.
    """
    body = {
        "model": settings.llm_model,
        "messages": [
            {"role": "system", "content": prompt},
            {"role": "assistant", "content": settings.bot_greeting},
        ],
        "max_tokens": 1,
    }
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"}
    try:
        url = f"{settings.llm_base_url}/chat/completions"
        async with session.post(url, json=body, headers=headers, timeout=_PRIME_TIMEOUT) as r:
            await r.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        logger.debug(f"LLM priming skipped: {error.__class__.__name__}")


def make_tts(
    settings: Settings, options: CallOptions, session: aiohttp.ClientSession
) -> KitTTSService:
    return KitTTSService(
        base_url=settings.xtts_base_url,
        voice=options.voice,
        language=options.language,
        session=session,
    )
