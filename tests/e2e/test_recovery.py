"""A dependency that fails mid-call is reported in words, and the call recovers when it returns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

import httpx
import pytest

from scripts.caller import Caller, read_wav
from tests.support import FIXTURES, free_port, metric, rms, server_process, stop_process, transcribe
from tests.support.stacks import stack_env

pytestmark = pytest.mark.e2e

QUESTION = read_wav(FIXTURES / "questions" / "sky.wav")


def llm_server(port: int, env: dict[str, str], name: str):
    return server_process(
        ["scripts/llm_server.py", "--port", str(port), "--parallel", "1"],
        env=env,
        ready_url=f"http://127.0.0.1:{port}/v1/models",
        name=f"{name}-llm",
    )


def tts_server(port: int, env: dict[str, str], name: str):
    return server_process(
        ["-m", "xtts"], env=env, ready_url=f"http://127.0.0.1:{port}/ready", name=f"{name}-tts"
    )


async def assert_answered(caller: Caller) -> None:
    """Once the bot is quiet, ask again: a new turn is measured and its answer is heard."""
    # What was left of an earlier answer may still be spoken; ask once it is done.
    await caller.wait_for(lambda: not caller.bot_speaking(), 60, "quiet")
    turns = len(caller.server_messages("latency"))
    stops = len(caller.of_type("bot-stopped-speaking"))
    caller.mic.say(QUESTION)
    await caller.wait_for(
        lambda: len(caller.of_type("bot-stopped-speaking")) > stops, 90, "an answer"
    )
    assert len(caller.server_messages("latency")) > turns
    assert rms(caller.audio_between(caller.mic.speech_end())) > 0.01


async def test_llm_down_then_back():
    label = "llm-down"
    llm_port, tts_port, bot_port = free_port(), free_port(), free_port()
    env = stack_env(llm_port, tts_port, bot_port)
    bot_url = f"http://127.0.0.1:{bot_port}"
    with contextlib.ExitStack() as processes:
        processes.enter_context(tts_server(tts_port, env["tts"], label))
        # The LLM is down from the start: the bot still starts, /ready says why, calls connect.
        processes.enter_context(
            server_process(
                ["-m", "bot"], env=env["bot"], ready_url=f"{bot_url}/health", name=f"{label}-bot"
            )
        )
        caller = Caller(bot_url)
        await caller.wait_for(lambda: _whisper_loaded(bot_url), 60, "Whisper to load")
        await caller.connect()
        try:
            await caller.wait_for(
                lambda: caller.of_type("bot-stopped-speaking"), 60, "the greeting"
            )
            stops = len(caller.of_type("bot-stopped-speaking"))
            caller.mic.say(QUESTION)
            errors = await caller.wait_for(
                lambda: caller.server_messages("error"), 60, "the LLM error"
            )
            assert errors[0]["service"] == "llm"
            assert errors[0]["message"], "the page must get the problem in words"
            # The caller hears an apology rather than silence.
            await caller.wait_for(
                lambda: len(caller.of_type("bot-stopped-speaking")) > stops, 60, "the apology"
            )
            apology = transcribe(caller.audio_between(caller.mic.speech_end()), 48000)
            assert "sorry" in apology and "language model" in apology, apology

            with llm_server(llm_port, env["llm"], label):
                back = await caller.wait_for(
                    lambda: caller.server_messages("recovered"), 30, "recovery"
                )
                assert back[0]["service"] == "llm"
                await assert_answered(caller)
        finally:
            await caller.close()


async def test_tts_down_then_back():
    label = "tts-down"
    llm_port, tts_port, bot_port = free_port(), free_port(), free_port()
    env = stack_env(llm_port, tts_port, bot_port)
    bot_url = f"http://127.0.0.1:{bot_port}"
    with contextlib.ExitStack() as processes:
        processes.enter_context(llm_server(llm_port, env["llm"], label))
        tts = processes.enter_context(tts_server(tts_port, env["tts"], label))
        processes.enter_context(
            server_process(
                ["-m", "bot"], env=env["bot"], ready_url=f"{bot_url}/ready", name=f"{label}-bot"
            )
        )
        caller = Caller(bot_url)
        await caller.connect()
        try:
            await caller.wait_for(
                lambda: caller.of_type("bot-stopped-speaking"), 60, "the greeting"
            )
            stop_process(tts)
            caller.mic.say(QUESTION)
            errors = await caller.wait_for(
                lambda: caller.server_messages("error"), 60, "the TTS error"
            )
            assert errors[0]["service"] == "tts"
            assert "unreachable" in errors[0]["message"]

            with tts_server(tts_port, env["tts"], label):
                back = await caller.wait_for(
                    lambda: caller.server_messages("recovered"), 30, "recovery"
                )
                assert back[0]["service"] == "tts"
                await assert_answered(caller)
        finally:
            await caller.close()


@pytest.mark.parametrize("service", ["llm", "tts"])
async def test_a_hung_dependency_counts_as_down_and_nothing_late_is_spoken(service):
    """The server's process stopped (SIGSTOP), not killed: it accepts connections and answers
    nothing. Within its deadline the call treats it as down (one message to the page; for the
    LLM, a filler while it is late, then the apology); when it resumes, what it writes for the
    abandoned request is never heard."""
    label = f"{service}-hung"
    llm_port, tts_port, bot_port = free_port(), free_port(), free_port()
    env = stack_env(llm_port, tts_port, bot_port)
    deadlines = {
        "LLM_TIMEOUT_SECS": "2.5",
        "LLM_FILLER_SECS": "1",
        "TTS_TIMEOUT_SECS": "2",
        "BOT_PROBE_TIMEOUT_SECS": "1",
    }
    bot_url = f"http://127.0.0.1:{bot_port}"
    with contextlib.ExitStack() as processes:
        servers = {
            "llm": processes.enter_context(llm_server(llm_port, env["llm"], label)),
            "tts": processes.enter_context(tts_server(tts_port, env["tts"], label)),
        }
        processes.enter_context(
            server_process(
                ["-m", "bot"],
                env={**env["bot"], **deadlines},
                ready_url=f"{bot_url}/ready",
                name=f"{label}-bot",
            )
        )
        hung = servers[service].pid
        caller = Caller(bot_url)
        await caller.connect()
        try:
            await caller.wait_for(
                lambda: caller.of_type("bot-stopped-speaking"), 60, "the greeting"
            )
            await caller.wait_for(lambda: not caller.bot_speaking(), 30, "quiet")
            os.kill(hung, signal.SIGSTOP)
            processes.callback(os.kill, hung, signal.SIGCONT)  # never leave it stopped
            caller.mic.say(QUESTION)
            errors = await caller.wait_for(
                lambda: caller.server_messages("error"), 30, f"the {service} error"
            )
            assert errors[0]["service"] == service
            assert (
                "sent nothing" in errors[0]["message"] or "did not answer" in errors[0]["message"]
            )
            async with httpx.AsyncClient() as client:
                page = (await client.get(f"{bot_url}/metrics")).text
            timeouts = metric(
                page, "kit_dependency_failures_total", service=service, kind="timeout"
            )
            assert timeouts >= 1
            if service == "llm":
                # The apology follows the filler, in the same stretch of speech or the next.
                heard = ""
                for _ in range(30):
                    await asyncio.sleep(1)
                    heard = transcribe(caller.audio_between(caller.mic.speech_end()), 48000)
                    if "sorry" in heard and not caller.bot_speaking():
                        break
                assert "sorry" in heard, heard
                assert "think" in heard.split("sorry")[0], f"no filler before the apology: {heard}"
            # The outage lasts a while: the rest of the answer meets the stopped server too.
            outage = time.monotonic()
            await caller.wait_for(lambda: time.monotonic() > outage + 4, 10, "the outage")
            await caller.wait_for(lambda: not caller.bot_speaking(), 30, "quiet")

            os.kill(hung, signal.SIGCONT)
            back = await caller.wait_for(
                lambda: caller.server_messages("recovered"), 30, "recovery"
            )
            assert back[0]["service"] == service
            resumed = time.monotonic()
            # The resumed server finishes the abandoned request: none of it reaches the caller.
            await caller.wait_for(lambda: time.monotonic() > resumed + 4, 10, "four seconds")
            assert rms(caller.audio_between(resumed)) < 0.003, "a late answer was spoken"
            errors = [m for m in caller.server_messages("error") if m["service"] == service]
            assert len(errors) == 1, f"one message per outage, not per request: {errors}"
            await assert_answered(caller)
        finally:
            await caller.close()


def _whisper_loaded(bot_url: str) -> bool:
    import httpx

    return httpx.get(f"{bot_url}/ready").json().get("stt") is not None
