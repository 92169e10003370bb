"""Real checks of the bot's dependencies: each returns None when healthy, else the problem in words.

The bot's /ready and its watch on a failed dependency use them, and so does `make run`'s launcher
when it decides what to start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from bot.config import Settings


async def _probe(
    session: aiohttp.ClientSession,
    settings: Settings,
    url: str,
    what: str,
    check: Callable[[Any], str | None] | None = None,
    **kwargs,
) -> str | None:
    timeout = aiohttp.ClientTimeout(total=settings.bot_probe_timeout_secs)
    try:
        async with session.get(url, timeout=timeout, **kwargs) as response:
            if response.status != 200:
                return f"{what} answered {response.status} at {url}"
            return check(await response.json(content_type=None)) if check else None
    except (aiohttp.ClientError, TimeoutError) as error:
        return f"{what} unreachable at {url} ({error.__class__.__name__})"
    except ValueError:
        return f"{what} at {url} answered something that is not JSON"


async def probe_llm(
    session: aiohttp.ClientSession, settings: Settings, *, model: str | None = None
) -> str | None:
    """The LLM server lists its models (OpenAI-compatible `GET /models`), `model` among them when
    given: the launcher asks, to choose between that server and the embedded one; the bot does
    not, since the embedded llama.cpp server answers to any name (the bot calls it `local`)."""
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"}
    url = f"{settings.llm_base_url}/models"

    def serves(body: Any) -> str | None:
        listed = body.get("data") if isinstance(body, dict) else None
        ids = (
            {m.get("id") for m in listed if isinstance(m, dict)}
            if isinstance(listed, list)
            else set()
        )
        if model in ids:
            return None
        return (
            f"the LLM server at {settings.llm_base_url} lacks {model!r} (try: ollama pull {model})"
        )

    return await _probe(
        session, settings, url, "LLM server", serves if model else None, headers=headers
    )


async def llm_slots(session: aiohttp.ClientSession, settings: Settings) -> int | None:
    """How many slots a llama.cpp server keeps a prompt cache in (its `GET /props`); 0 for any
    other server (Ollama, vLLM); None when the server did not answer. Asked as a call starts, so
    it waits one second at most."""
    root = settings.llm_base_url.removesuffix("/v1")
    timeout = aiohttp.ClientTimeout(total=min(1.0, settings.bot_probe_timeout_secs))
    try:
        async with session.get(f"{root}/props", timeout=timeout) as response:
            body = await response.json(content_type=None) if response.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError):
        return None
    except ValueError:  # not JSON: not llama.cpp
        return 0
    slots = body.get("total_slots") if isinstance(body, dict) else None
    return slots if isinstance(slots, int) and slots > 0 else 0


async def llm_model(session: aiohttp.ClientSession, settings: Settings) -> dict[str, Any]:
    """What the LLM server says of its model, for /ready and the benchmark's records: the id and
    any `key=value` tags (`GET /models`; the kit's llama.cpp server tags its threads,
    quantisation and whether the file is a timing twin), and llama.cpp's size figures. Empty
    when the server does not answer."""
    timeout = aiohttp.ClientTimeout(total=settings.bot_probe_timeout_secs)
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"}
    try:
        url = f"{settings.llm_base_url}/models"
        async with session.get(url, timeout=timeout, headers=headers) as response:
            body = await response.json(content_type=None) if response.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {}
    listed = body.get("data") if isinstance(body, dict) else None
    if not isinstance(listed, list) or not listed or not isinstance(listed[0], dict):
        return {}
    found = listed[0]
    model: dict[str, Any] = {"id": found.get("id")}
    for tag in found.get("tags") or []:
        if isinstance(tag, str) and "=" in tag:
            key, value = tag.split("=", 1)
            model[key] = int(value) if value.isdigit() else value
    meta = found.get("meta")
    if isinstance(meta, dict):
        model.update({k: meta[k] for k in ("n_params", "size", "n_ctx") if k in meta})
    return model


async def probe_tts(session: aiohttp.ClientSession, settings: Settings) -> str | None:
    """The TTS server has its engine loaded."""
    return await _probe(session, settings, f"{settings.xtts_base_url}/ready", "TTS server")


PROBES = {"llm": probe_llm, "tts": probe_tts}
