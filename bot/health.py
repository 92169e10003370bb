"""Real checks of the bot's dependencies: each returns None when healthy, else the problem in words."""

from __future__ import annotations

import aiohttp

from bot.config import Settings


async def _probe(
    session: aiohttp.ClientSession, settings: Settings, url: str, what: str, **kwargs
) -> str | None:
    timeout = aiohttp.ClientTimeout(total=settings.bot_probe_timeout_secs)
    try:
        async with session.get(url, timeout=timeout, **kwargs) as response:
            if response.status == 200:
                return None
            return f"{what} answered {response.status} at {url}"
    except (aiohttp.ClientError, TimeoutError) as error:
        return f"{what} unreachable at {url} ({error.__class__.__name__})"


async def probe_llm(session: aiohttp.ClientSession, settings: Settings) -> str | None:
    """The LLM server lists its models (OpenAI-compatible `GET /models`)."""
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"}
    url = f"{settings.llm_base_url}/models"
    return await _probe(session, settings, url, "LLM server", headers=headers)


async def probe_tts(session: aiohttp.ClientSession, settings: Settings) -> str | None:
    """The TTS server has its engine loaded."""
    return await _probe(session, settings, f"{settings.xtts_base_url}/ready", "TTS server")


PROBES = {"llm": probe_llm, "tts": probe_tts}
