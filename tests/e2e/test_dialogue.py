"""The conversation as a caller has it, over WebRTC against the real stack: a question with a
pause inside is answered once, whole; a caller who goes on after a pause never hears the answer
that was being prepared, and its llama.cpp slot is freed; answers are short and never loop; the
seed's configuration still answers. Behaviour, not time."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from bot.answers import AnswerGuard
from scripts.caller import Caller, read_wav
from tests.conftest import stack_env
from tests.support import (
    FIXTURES,
    ask,
    assert_english_speech,
    free_port,
    greeting_of,
    server_process,
    silence,
    spoken,
    words,
)

pytestmark = pytest.mark.e2e


def answer_text(caller: Caller, since: int) -> str:
    """What the bot said after the first `since` bot-output messages, each piece once."""
    said = caller.of_type("bot-output")[since:]
    return " ".join(
        m["data"].get("text", "") for m in said if m["data"].get("spoken_status") != "new"
    )


def turn_records(caller: Caller, since: int) -> list[dict]:
    return [m for m in caller.server_messages("latency")[since:] if m["kind"] == "turn"]


async def test_a_pause_mid_sentence_is_waited_through(stack):
    # Synthesized before the call: the caller's loop must not stall while its microphone runs.
    question = spoken("I was wondering,") + silence(0.75) + spoken("what is a rainbow made of?")
    caller = Caller(stack.bot_url)
    await caller.connect()
    try:
        await greeting_of(caller)
        turns = len(caller.server_messages("latency"))
        asked = time.monotonic()
        caller.mic.say(question)
        await caller.wait_for(lambda: turn_records(caller, turns), 60, "the answer's latency")
        await caller.wait_for(lambda: not caller.bot_speaking(), 60, "the answer to end")
        first_sound = caller.first_sound_after(asked)
        assert first_sound is not None, "no answer was heard"
        assert first_sound > caller.mic.speech_end(), "the bot spoke before the question ended"
        assert len(turn_records(caller, turns)) == 1, "one question, one answer"
        assert_english_speech(caller.audio_between(asked))
    finally:
        await caller.close()


PAUSE_SECS = 0.8  # inside the patient bot's turn (VAD stop 1.2 s), long enough to answer in


@pytest.fixture(scope="module")
def patient_bot(stack):
    """A second bot on the stack's LLM and TTS servers whose VAD waits 1.2 s before calling
    speech over: a 0.8 s pause is then inside the turn, long enough for the hybrid strategy to
    start answering, short enough for the caller to go on before that answer is confirmed."""
    port = free_port()
    ports = (int(url.rsplit(":", 1)[1]) for url in (stack.llm_url, stack.tts_url))
    env = stack_env(*ports, port)["bot"]
    url = f"http://127.0.0.1:{port}"
    with server_process(
        ["-m", "bot"],
        env={**env, "VAD_STOP_SECS": "1.2"},
        ready_url=f"{url}/ready",
        name="e2e-patient-bot",
    ):
        yield url


async def busy_slots(client: httpx.AsyncClient, llm_url: str) -> int:
    """How many of llama.cpp's slots are generating now."""
    slots = (await client.get(f"{llm_url}/slots")).json()
    return sum(slot["is_processing"] for slot in slots)


async def test_going_on_after_a_pause_drops_the_prepared_answer(stack, patient_bot):
    first, rest = spoken("Why is the sky blue?"), spoken("And why are sunsets red?")
    caller = Caller(patient_bot)
    await caller.connect()
    try:
        await greeting_of(caller)
        async with httpx.AsyncClient(timeout=5) as client:
            # The greeting primes the LLM with the persona: let that request finish first.
            for _ in range(200):
                if not await busy_slots(client, stack.llm_url):
                    break
                await asyncio.sleep(0.05)
            turns = len(caller.server_messages("latency"))
            outputs = len(caller.of_type("bot-output"))
            asked = time.monotonic()
            caller.mic.say(first)
            resumed_at = caller.mic.speech_end() + PAUSE_SECS
            caller.mic.say(silence(PAUSE_SECS) + rest)

            # The first half is being answered when the caller goes on ...
            busy: list[tuple[float, int]] = []
            while (now := time.monotonic()) < caller.mic.speech_end():
                busy.append((now - resumed_at, await busy_slots(client, stack.llm_url)))
                await asyncio.sleep(0.03)
        before = [n for at, n in busy if -0.2 <= at < 0]
        after = [n for at, n in busy if at >= 0.35]
        assert any(before), f"nothing was being answered as the caller went on: {busy}"
        # ... and that generation is stopped as soon as they do: llama.cpp's slot is free.
        assert after and not any(after), f"the withdrawn answer was still generated: {busy}"

        await caller.wait_for(lambda: turn_records(caller, turns), 60, "the answer's latency")
        await caller.wait_for(lambda: not caller.bot_speaking(), 60, "the answer to end")
        first_sound = caller.first_sound_after(asked)
        assert first_sound is not None and first_sound > caller.mic.speech_end(), (
            "audio of the withdrawn answer was heard"
        )
        assert len(turn_records(caller, turns)) == 1, "one turn, answered once"
        heard = words(" ".join(m["data"]["text"] for m in caller.of_type("user-transcription")))
        assert "sky" in heard and "sunset" in heard, heard
        assert answer_text(caller, outputs).strip(), "the whole question was not answered"
    finally:
        await caller.close()


async def test_the_conversation_is_read_ahead_while_the_answer_is_spoken(stack):
    """As soon as an answer is written, llama.cpp is asked to read the conversation with it
    (a one-token request whose prompt is longer than the answer's): the bot is still speaking,
    so the next question finds the window in the server's cache."""
    caller = Caller(stack.bot_url)
    await caller.connect()
    try:
        await greeting_of(caller)
        answer: tuple[int, int] | None = None  # (task, prompt tokens) of the answer's request
        primed = None
        seen: set[tuple] = set()  # (slot, task, prompt tokens, tokens to predict)
        async with httpx.AsyncClient(timeout=5) as client:
            caller.mic.say(read_wav(FIXTURES / "questions" / "sky.wav"))
            deadline = time.monotonic() + 60
            while primed is None and time.monotonic() < deadline:
                for slot in (await client.get(f"{stack.llm_url}/slots")).json():
                    if "params" not in slot:
                        continue  # never used yet
                    task, tokens = slot["id_task"], slot["n_prompt_tokens"]
                    predict = slot["params"]["n_predict"]
                    seen.add((slot["id"], task, tokens, predict))
                    if slot["is_processing"] and predict > 1:
                        # The count grows as the answer is written: keep the prompt's own.
                        answer = (task, min(tokens, answer[1])) if answer else (task, tokens)
                    elif answer and predict == 1 and task > answer[0] and tokens > answer[1]:
                        primed = (task, tokens, caller.bot_speaking())
                await asyncio.sleep(0.02)
        assert answer is not None, "the answer's request was never seen generating"
        assert primed is not None, f"nothing read after the answer {answer}: {sorted(seen)}"
        assert primed[2], "the conversation was read only once the answer had been spoken"
    finally:
        await caller.close()


async def answering_slots(client: httpx.AsyncClient, llm_url: str, until: float) -> set[int]:
    """The llama.cpp slots seen writing an answer (not a one-token read) until `until`."""
    seen = set()
    while time.monotonic() < until:
        for slot in (await client.get(f"{llm_url}/slots")).json():
            if slot["is_processing"] and slot.get("params", {}).get("n_predict", 0) > 1:
                seen.add(slot["id"])
        await asyncio.sleep(0.02)
    return seen


async def test_each_call_keeps_to_its_own_llama_cpp_slot(stack):
    """Two calls at once: each one's answers are written in a slot of its own, so neither
    overwrites the other's cached conversation."""
    first, second = Caller(stack.bot_url), Caller(stack.bot_url)
    await first.connect()
    try:
        await greeting_of(first)
        await second.connect()
        try:
            await greeting_of(second)
            async with httpx.AsyncClient(timeout=5) as client:
                slots = []
                for caller in (second, first):
                    caller.mic.say(read_wav(FIXTURES / "questions" / "sky.wav"))
                    until = caller.mic.speech_end() + 8
                    slots.append(await answering_slots(client, stack.llm_url, until))
                    await caller.wait_for(lambda c=caller: not c.bot_speaking(), 60, "the end")
        finally:
            await second.close()
    finally:
        await first.close()
    assert all(len(seen) == 1 for seen in slots), f"an answer moved between slots: {slots}"
    assert slots[0] != slots[1], f"both calls were answered in the same slot: {slots}"


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


async def test_answers_are_short_and_never_loop(stack):
    """On the kit's recordings: one to three sentences, at most 60 words, no phrase twice."""
    guard = AnswerGuard()  # the budget the persona is held to
    caller = Caller(stack.bot_url)
    await caller.connect()
    try:
        await greeting_of(caller)
        for name in ("sky", "moon", "spider", "plants"):
            outputs = len(caller.of_type("bot-output"))
            await ask(caller, read_wav(FIXTURES / "questions" / f"{name}.wav"))
            answer = answer_text(caller, outputs)
            said = re.findall(r"[a-z0-9']+", answer.lower())
            assert 1 <= len(said) <= guard.max_words, (name, answer)
            assert 1 <= len(sentences(answer)) <= guard.max_sentences, (name, answer)
            grams = [tuple(said[i : i + 4]) for i in range(len(said) - 3)]
            assert len(set(grams)) == len(grams), f"{name}: the answer repeats itself: {answer}"
    finally:
        await caller.close()


async def test_the_seed_configuration_still_answers(stack):
    """`{"profile": "seed"}`: Pipecat's stock XTTSService, Smart Turn alone, the 30 s window."""
    caller = Caller(stack.bot_url)
    await caller.connect({"profile": "seed"})
    try:
        await greeting_of(caller)
        transcript, answer, turn = await ask(
            caller, read_wav(FIXTURES / "questions" / "france.wav")
        )
        assert "france" in words(transcript), transcript
        assert_english_speech(answer)
        assert turn["stages_ms"]["endpointing"] > 0
    finally:
        await caller.close()
