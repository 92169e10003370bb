"""End to end over WebRTC: real processes, a real aiortc caller, Whisper as the judge."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.latency import STAGES
from scripts.caller import Caller, read_wav
from tests.support import (
    ARTIFACTS,
    CALLER_RATE,
    FIXTURES,
    ask,
    assert_english_speech,
    finals,
    greeting_of,
    metric,
    rms,
    spoken,
    transcribe,
    words,
)

pytestmark = pytest.mark.e2e

QUESTION = read_wav(FIXTURES / "questions" / "france.wav")


def assert_full_breakdown(turn: dict) -> None:
    assert turn["kind"] == "turn"
    assert set(turn["stages_ms"]) == set(STAGES)
    assert turn["stages_ms"]["endpointing"] > 0, turn
    # Whisper's, the LLM's and TTS's stages are what is left of them after the turn's end: 0
    # when the transcript made at the first pause, the answer started on it, or its first audio
    # (held until the turn is confirmed) was ready by then.
    assert all(turn["stages_ms"][stage] >= 0 for stage in ("stt", "llm", "tts")), turn
    assert turn["total_ms"] == pytest.approx(sum(turn["stages_ms"].values()), abs=1)


async def test_spoken_question_gets_a_spoken_answer(stack):
    log = ARTIFACTS / "e2e-bot.log"  # the stack's bot, shared with other tests' calls
    summaries_before = log.read_text().count("latency summary:")
    caller = Caller(stack.bot_url)
    await caller.connect()
    try:
        greeting = await greeting_of(caller)
        assert rms(greeting) > 0.01, "greeting is silent"
        assert "harper" in transcribe(greeting, CALLER_RATE)
        # Between the greeting and the answer the bot sends no packets of silence
        # (bot/transports/quiet_track.py): nothing arrives while it has nothing to say.
        await caller.wait_for(lambda: not caller.bot_speaking(), 30, "the greeting's end")
        await asyncio.sleep(0.5)  # its last packets on the way
        quiet_from = asyncio.get_running_loop().time()
        await asyncio.sleep(1.5)
        assert not caller.audio_between(quiet_from, quiet_from + 1.5), "silence was sent"

        transcript, answer, turn = await ask(caller, QUESTION)
        assert "capital" in words(transcript) and "france" in words(transcript), transcript
        assert rms(answer) > 0.01, "answer is silent"
        assert_english_speech(answer)
        assert_full_breakdown(turn)
        bot_lines = caller.of_type("bot-output") or caller.of_type("bot-tts-text")
        assert bot_lines, "the bot's words never reached the page"
        # The turn is in /metrics too, per stage (other tests' calls share this bot).
        async with httpx.AsyncClient() as client:
            page = (await client.get(f"{stack.bot_url}/metrics")).text
        assert metric(page, "kit_calls_total", transport="webrtc") >= 1
        assert metric(page, "kit_turn_seconds_sum", stage="total") > 0
        # Every stage recorded; Whisper's and the LLM's may be 0 (ready before the turn ended).
        for stage in STAGES:
            assert metric(page, "kit_turn_seconds_count", stage=stage) >= 1, stage
    finally:
        await caller.close()

    # The per-call summary table is logged when the call ends: this call's is the next one.
    await caller.wait_for(
        lambda: log.read_text().count("latency summary:") > summaries_before,
        20,
        "the call's summary",
    )
    summary = log.read_text().split("latency summary:")[summaries_before + 1]
    assert "median" in summary and "p95" in summary
    # What the caller said stays out of the log at the default level.
    assert "capital" not in log.read_text().lower()


async def test_two_sessions_at_once(stack):
    callers = [Caller(stack.bot_url), Caller(stack.bot_url)]
    await asyncio.gather(*(c.connect() for c in callers))
    try:
        greetings = await asyncio.gather(*(greeting_of(c) for c in callers))
        assert all(rms(g) > 0.01 for g in greetings)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{stack.bot_url}/health")).json()["calls"] >= 2

        results = await asyncio.gather(*(ask(c, QUESTION) for c in callers))
        for transcript, answer, turn in results:
            assert "france" in words(transcript), transcript
            assert_english_speech(answer)
            assert_full_breakdown(turn)
    finally:
        await asyncio.gather(*(c.close() for c in callers))


async def test_speaking_over_the_bot_interrupts_it(stack):
    caller = Caller(stack.bot_url)
    await caller.connect()
    try:
        await caller.wait_for(lambda: caller.of_type("bot-started-speaking"), 60, "the greeting")
        started = caller.audio[-1][0] if caller.audio else 0.0
        caller.mic.say(QUESTION)  # talk over the greeting (about 4 s of speech)
        await caller.wait_for(lambda: caller.of_type("bot-interrupted"), 30, "the interruption")
        await caller.wait_for(lambda: caller.of_type("bot-stopped-speaking"), 10, "the bot to stop")
        # The answer starts speaking anew, so its turn is measured: nothing of the greeting
        # played after the interruption kept the bot "speaking" (bot/playout.py).
        await caller.wait_for(lambda: caller.server_messages("latency")[1:], 60, "the answer")
        assert "france" in words(" ".join(finals(caller))), finals(caller)

        # The greeting is cut: well under its full length reached the caller before the answer.
        # (Judged once the caller is quiet: Whisper in this process would hold up its microphone.)
        full_greeting = transcribe(
            caller.audio_between(started, caller.mic.speech_end()), CALLER_RATE
        )
        assert "learn about today" not in full_greeting, full_greeting
    finally:
        await caller.close()


async def test_a_backchannel_over_the_bot_leaves_it_talking(stack):
    caller = Caller(stack.bot_url)
    await caller.connect()
    try:
        await caller.wait_for(lambda: caller.of_type("bot-started-speaking"), 60, "the greeting")
        started = caller.audio[-1][0] if caller.audio else 0.0
        await asyncio.sleep(1.0)  # well into the greeting, past the moment to resume a turn
        caller.mic.say(spoken("Okay."))
        await caller.wait_for(lambda: caller.of_type("bot-stopped-speaking"), 30, "its end")
        assert not caller.of_type("bot-interrupted"), "the okay stopped the bot"
        await asyncio.sleep(3.0)
        assert not caller.server_messages("latency")[1:], "the okay was answered as a turn"
        greeting = transcribe(caller.audio_between(started), CALLER_RATE)
        assert "learn about today" in greeting, f"the greeting lost its end: {greeting!r}"
    finally:
        await caller.close()


async def test_the_caller_chooses_voice_language_and_persona(stack):
    pirate = "You are Captain Hook, a pirate. Answer in one short sentence."
    caller = Caller(stack.bot_url)
    await caller.connect({"voice": "heart", "language": "en", "prompt": pirate})
    try:
        assert rms(await greeting_of(caller)) > 0.01
        _, answer, _ = await ask(caller, QUESTION)
        assert_english_speech(answer)
    finally:
        await caller.close()


async def test_a_language_the_stack_cannot_speak_is_refused_in_words(stack):
    caller = Caller(stack.bot_url)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await caller.connect({"language": "de"})
    await caller.close()
    assert refused.value.response.status_code == 400
    assert refused.value.response.json() == {
        "error": "language: 'de' is not spoken by both the TTS engine and Whisper (they share: en)"
    }
