"""The real stack as separate processes: embedded llama.cpp server, TTS server (Hibari), the bot."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.support import ARTIFACTS, free_port, server_process
from tests.support.stacks import Stack, stack_env

# Fixtures more than one directory's tests use, defined once: `open_page` (tests/browser and
# tests/docker's browser tests).
pytest_plugins = ["tests.support.browser"]

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
