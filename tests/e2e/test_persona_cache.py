"""The default persona, read once by the real llama.cpp server, restored into a call's slot
(bot/persona_cache.py): the call's first request then reads only its own words."""

from __future__ import annotations

import aiohttp
import pytest

from bot.config import load_settings
from bot.persona_cache import PersonaCache

pytestmark = pytest.mark.e2e

SLOT = 1  # the stack's server has two; its bot's calls start at the first


async def test_the_persona_is_read_once_and_restored_into_a_calls_slot(stack):
    settings = load_settings(llm_base_url=f"{stack.llm_url}/v1", llm_model="local")
    cache = PersonaCache(settings)
    async with aiohttp.ClientSession() as session:
        await cache.warm(session, slots=2)
        assert cache.saved, "the kit's llama.cpp server keeps slot files"
        # Something else in the slot first: the restore must replace it.
        await ask(session, stack.llm_url, "You are a pirate.", "Ahoy?")
        assert not await cache.restore(session, SLOT, "You are a pirate.")  # not the default
        assert await cache.restore(session, SLOT, settings.system_prompt)
        timings = await ask(session, stack.llm_url, settings.system_prompt, "What do bees make?")
    assert timings["cache_n"] > 50, timings  # the persona, from the file
    assert timings["prompt_n"] < 20, timings  # the question alone, read now


async def ask(session: aiohttp.ClientSession, llm_url: str, persona: str, question: str) -> dict:
    body = {
        "messages": [{"role": "system", "content": persona}, {"role": "user", "content": question}],
        "max_tokens": 1,
        "id_slot": SLOT,
    }
    async with session.post(f"{llm_url}/v1/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["timings"]
