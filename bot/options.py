"""What a caller may choose for one call (voice, language, persona), checked before it starts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.call_config import PROFILES, Profile
from bot.config import Settings
from bot.models import SpeechModel

_CATALOG_TTL_SECS = 30.0
_TIMEOUT = aiohttp.ClientTimeout(total=10)


class BadOptions(ValueError):
    """A caller's choice the bot cannot honour; the message names the field, for the page."""


class TTSUnavailable(RuntimeError):
    """The TTS server could not say which voices it has."""


@dataclass(frozen=True)
class CallOptions:
    voice: str
    language: str
    prompt: str
    profile: Profile = "kit"


@dataclass(frozen=True)
class Catalog:
    """What callers can choose from: the TTS server's voices, languages both sides speak."""

    voices: list[str]
    languages: list[str]


class Choices:
    """The catalog, looked up from the TTS server and kept for a short while (its speaker list
    is megabytes for XTTS), and the validation of a caller's options against it."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._catalog: Catalog | None = None
        self._fetched_at = 0.0

    async def catalog(self, session: aiohttp.ClientSession, speech: SpeechModel) -> Catalog:
        if self._catalog and time.monotonic() - self._fetched_at < _CATALOG_TTL_SECS:
            return self._catalog
        base = self._settings.xtts_base_url
        try:
            async with session.get(f"{base}/studio_speakers", timeout=_TIMEOUT) as response:
                if response.status != 200:
                    raise TTSUnavailable(
                        f"the TTS server answered {response.status} for its voices"
                    )
                voices = list(await response.json())
            async with session.get(f"{base}/languages", timeout=_TIMEOUT) as response:
                tts_languages = await response.json() if response.status == 200 else ["en"]
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TTSUnavailable(f"the TTS server is unreachable at {base}") from error
        stt_languages = speech.decoder.supported_languages if speech.decoder else None
        # XTTS says "zh-cn" where Whisper says "zh".
        languages = [
            code
            for code in tts_languages
            if stt_languages is None or code.split("-")[0] in stt_languages
        ]
        self._catalog, self._fetched_at = Catalog(voices, languages), time.monotonic()
        return self._catalog

    async def resolve(
        self, raw: Any, session: aiohttp.ClientSession, speech: SpeechModel
    ) -> CallOptions:
        """The options for a call: the caller's choices where given, else the settings'."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise BadOptions("options must be a JSON object with voice, language and prompt")
        settings = self._settings
        voice = _text(raw, "voice") or settings.tts_voice
        language = _text(raw, "language") or settings.tts_language
        prompt = _text(raw, "prompt")
        if len(prompt) > settings.bot_max_prompt_chars:
            raise BadOptions(
                f"prompt: at most {settings.bot_max_prompt_chars} characters (got {len(prompt)})"
            )
        prompt = prompt or settings.system_prompt
        profile = _text(raw, "profile") or "kit"
        if profile not in PROFILES:
            raise BadOptions(f"profile: must be one of {', '.join(PROFILES)} (got {profile!r})")
        # Pipecat's stock client (the seed's) needs the voice by name: the server's first.
        needs_voice = profile == "seed" and not voice
        if "voice" in raw or "language" in raw or needs_voice:
            try:
                catalog = await self.catalog(session, speech)
            except TTSUnavailable as error:
                raise BadOptions(f"voice: cannot be checked now, {error}") from None
            if needs_voice and catalog.voices:
                voice = catalog.voices[0]
            if voice and voice not in catalog.voices:
                raise BadOptions(
                    f"voice: {voice!r} is not offered by the TTS server "
                    f"(it has: {', '.join(catalog.voices)})"
                )
            if language not in catalog.languages:
                raise BadOptions(
                    f"language: {language!r} is not spoken by both the TTS engine and Whisper "
                    f"(they share: {', '.join(catalog.languages)})"
                )
        return CallOptions(voice, language, prompt, profile)


def _text(raw: dict, field: str) -> str:
    value = raw.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadOptions(f"{field}: must be a string")
    return value.strip()
