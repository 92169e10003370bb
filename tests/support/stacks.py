"""The real stack as separate processes: embedded llama.cpp server, TTS server (Hibari), the bot.
The session's `stack` fixture (tests/conftest.py) starts one; tests that need a process of
their own start it with the same environment."""

from __future__ import annotations

from dataclasses import dataclass

from bot.models import bundled_whisper_path


@dataclass(frozen=True)
class Stack:
    bot_url: str
    llm_url: str
    tts_url: str


def stack_env(llm_port: int, tts_port: int, bot_port: int) -> dict[str, dict[str, str]]:
    """Environment of each process; the bot's mirrors what `make run` gives it."""
    return {
        "llm": {"LLM_GGUF": "auto"},
        "tts": {"TTS_ENGINE": "hibari", "TTS_PORT": str(tts_port), "TTS_HOST": "127.0.0.1"},
        "bot": {
            "WHISPER_MODEL": bundled_whisper_path() or "tiny.en",
            "WHISPER_DEVICE": "cpu",
            "LLM_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "LLM_MODEL": "local",
            "XTTS_BASE_URL": f"http://127.0.0.1:{tts_port}",
            "BOT_HOST": "127.0.0.1",
            "BOT_PORT": str(bot_port),
            # Tests open calls back to back, and a closed call frees its place a little later;
            # the limit itself is tested on a bot of its own (tests/e2e/test_call_limit.py).
            "BOT_MAX_CALLS": "8",
        },
    }
