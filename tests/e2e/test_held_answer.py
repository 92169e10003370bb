"""An answer started before the caller has finished is synthesised and held, never heard unless
the turn is confirmed: real processes (llama.cpp, the TTS server, the bot), a real WebRTC caller.

The bot here waits long after a statement (TURN_STATEMENT_SECS), so that the caller's gap between
two sentences leaves the held answer time to be written and spoken into the hold: what is tested
is what happens to it, not how fast it is made.
"""

from __future__ import annotations

import time

import pytest

from scripts.caller import Caller
from tests.support import finals, free_port, rms, server_process, silence, spoken, words
from tests.support.stacks import Stack, stack_env

pytestmark = pytest.mark.e2e

GAP_SECS = 2.0  # between the caller's two sentences; the bot waits 3 s after a statement


@pytest.fixture(scope="module")
def patient_bot(stack: Stack):
    """A bot of its own on the stack's LLM and TTS servers."""
    port = free_port()
    env = stack_env(0, 0, port)["bot"] | {
        "LLM_BASE_URL": f"{stack.llm_url}/v1",
        "XTTS_BASE_URL": stack.tts_url,
        "TURN_STATEMENT_SECS": "3",
    }
    url = f"http://127.0.0.1:{port}"
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/ready", name="held-bot"):
        yield url


async def test_a_withdrawn_answer_is_made_but_never_heard(patient_bot):
    first, second = spoken("I have a pet rabbit."), spoken("What should I feed her?")
    caller = Caller(patient_bot)
    await caller.connect()
    try:
        await caller.wait_for(lambda: caller.of_type("bot-stopped-speaking"), 90, "the greeting")
        await caller.wait_for(lambda: not caller.bot_speaking(), 30, "quiet")
        synthesised = len(caller.of_type("bot-tts-started"))
        stops = len(caller.of_type("bot-stopped-speaking"))
        caller.mic.say(first + silence(GAP_SECS) + second)
        started = time.monotonic()
        # Just before the second sentence: the first was answered, and the answer spoken, into
        # the hold.
        second_at = started + len(first) / 2 / 16000 + GAP_SECS
        await caller.wait_for(
            lambda: len(caller.of_type("bot-tts-started")) > synthesised,
            second_at - 0.1 - time.monotonic(),
            "the answer to the first sentence synthesised during the gap",
        )
        await caller.wait_for(
            lambda: len(caller.of_type("bot-stopped-speaking")) > stops, 60, "the answer"
        )
        end = caller.mic.speech_end()
        said = caller.audio_between(started, end)
        assert rms(said) < 0.003, "the held answer was heard while the caller was speaking"
        assert rms(caller.audio_between(end)) > 0.01, "the answer to the whole turn is heard"
        heard = words(" ".join(finals(caller)))
        assert "rabbit" in heard and "feed" in heard, heard
        assert caller.server_messages("latency")[-1]["kind"] == "turn"
    finally:
        await caller.close()
