"""The real stack as separate processes: embedded llama.cpp server, TTS server (Hibari), the bot."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.models import bundled_whisper_path
from tests.support import ARTIFACTS, free_port, server_process

_LOG_TAIL_LINES = 25
UNIT = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(items):
    """Every test under tests/unit is a `unit` test (`make test-fast` selects by that marker);
    the other suites mark themselves."""
    for item in items:
        if item.path.is_relative_to(UNIT):
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report ends with what the servers it talked to logged meanwhile (above
    debug): on CI that is all there is to go on."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed or not ARTIFACTS.is_dir():
        return
    for log in sorted(ARTIFACTS.glob("*.log")):
        if log.stat().st_mtime < call.start:
            continue
        lines = [
            line[:300]
            for line in log.read_text(errors="replace").splitlines()
            if "| DEBUG" not in line and "| TRACE" not in line
        ]
        report.sections.append((f"{log.name}, last lines", "\n".join(lines[-_LOG_TAIL_LINES:])))


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


@pytest.fixture(scope="session")
def stack() -> Stack:
    llm_port, tts_port, bot_port = free_port(), free_port(), free_port()
    env = stack_env(llm_port, tts_port, bot_port)
    llm_url = f"http://127.0.0.1:{llm_port}"
    tts_url = f"http://127.0.0.1:{tts_port}"
    bot_url = f"http://127.0.0.1:{bot_port}"
    with contextlib.ExitStack() as processes:
        processes.enter_context(
            server_process(
                ["scripts/llm_server.py", "--port", str(llm_port), "--parallel", "2"],
                env=env["llm"],
                ready_url=f"{llm_url}/v1/models",
                name="e2e-llm",
            )
        )
        processes.enter_context(
            server_process(
                ["-m", "xtts"], env=env["tts"], ready_url=f"{tts_url}/ready", name="e2e-tts"
            )
        )
        processes.enter_context(
            server_process(
                ["-m", "bot"], env=env["bot"], ready_url=f"{bot_url}/ready", name="e2e-bot"
            )
        )
        yield Stack(bot_url, llm_url, tts_url)
