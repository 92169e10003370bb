"""The default persona read into the LLM server's prompt cache before a call needs it.

Reading Miss Harper's persona (about 200 tokens) takes the bundled 135M model 0.25 s on 2 cores,
a 1.7B model's twin 3.5 s and an 8B model's twin 12-15 s: a call's first answer would wait for it.
So once the server answers, the bot has it read the persona once, into this process's first
llama.cpp slot (any other server: into its one prompt cache), and, where the server keeps slot
files (llama.cpp's `--slot-save-path`; the kit's own server does), saves that slot. A call with
the default persona then has the file restored into its own slot as it starts: milliseconds, not
a re-read. Elsewhere each slot's first call reads the persona while the greeting plays.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import aiohttp
from loguru import logger

from bot.config import Settings

_RETRY_SECS = 2.0  # while the LLM server is still starting
_READ_TIMEOUT_SECS = 300.0  # an 8B model on 2 cores reads a long persona in well under this


class PersonaCache:
    """Reads `settings.system_prompt` into the server once; restores it into a call's slot."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._root = settings.llm_base_url.removesuffix("/v1")
        digest = hashlib.sha1(f"{settings.llm_model}\n{settings.system_prompt}".encode())
        self.filename = f"persona-{digest.hexdigest()[:12]}.bin"
        self.saved = False  # the slot file exists on the server

    async def warm(self, session: aiohttp.ClientSession, slots: int | None) -> None:
        """Have the server read the persona (retrying while it starts), then save the slot where
        it has slots (`slots` > 0; None while unknown is treated as none)."""
        body: dict[str, Any] = {
            "model": self._settings.llm_model,
            "messages": [{"role": "system", "content": self._settings.system_prompt}],
            "max_tokens": 1,
        }
        if slots:
            body["id_slot"] = 0
        headers = {"Authorization": f"Bearer {self._settings.llm_api_key}"}
        while True:
            try:
                async with session.post(
                    f"{self._settings.llm_base_url}/chat/completions",
                    json=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=_READ_TIMEOUT_SECS),
                ) as response:
                    if response.status == 200:
                        break
                    logger.debug(f"persona not read yet: the LLM server answered {response.status}")
            except (aiohttp.ClientError, TimeoutError) as error:
                logger.debug(f"persona not read yet: {error.__class__.__name__}")
            await asyncio.sleep(_RETRY_SECS)
        if slots:
            self.saved = await self._slot_action(session, 0, "save")
        logger.info(
            "the persona is in the LLM server's cache"
            + (f" and saved as {self.filename}" if self.saved else "")
        )

    async def restore(self, session: aiohttp.ClientSession, slot: int, prompt: str) -> bool:
        """Put the read persona into `slot` for a call that uses it; whether it was done."""
        if not self.saved or prompt != self._settings.system_prompt:
            return False
        return await self._slot_action(session, slot, "restore")

    async def _slot_action(self, session: aiohttp.ClientSession, slot: int, action: str) -> bool:
        """llama.cpp's `POST /slots/{id}?action=save|restore`: False where it is refused (no
        `--slot-save-path`) or fails."""
        try:
            async with session.post(
                f"{self._root}/slots/{slot}?action={action}",
                json={"filename": self.filename},
                timeout=aiohttp.ClientTimeout(total=self._settings.bot_probe_timeout_secs),
            ) as response:
                if response.status == 200:
                    return True
                logger.debug(f"slot {slot} {action}: the LLM server answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as error:
            logger.debug(f"slot {slot} {action}: {error.__class__.__name__}")
        return False
