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
from tests.support import (
    ARTIFACTS,
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
from tests.support.stacks import stack_env

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


PATIENT_VAD_STOP_SECS = 3.0


@pytest.fixture(scope="module")
def patient_bot(stack):
    """A second bot on the stack's LLM and TTS servers whose VAD waits 3 s before calling speech
    over: the caller can pause until the hybrid strategy starts answering, however loaded the
    machine, and go on before that answer is confirmed."""
    port = free_port()
    ports = (int(url.rsplit(":", 1)[1]) for url in (stack.llm_url, stack.tts_url))
    env = stack_env(*ports, port)["bot"]
    url = f"http://127.0.0.1:{port}"
    with server_process(
        ["-m", "bot"],
        env={**env, "VAD_STOP_SECS": str(PATIENT_VAD_STOP_SECS)},
        ready_url=f"{url}/ready",
        name="e2e-patient-bot",
    ):
        yield url


LLM_LOG = ARTIFACTS / "e2e-llm.log"  # the stack's llama.cpp server, logging every task


def writing_answer(slot: dict) -> bool:
    """A llama.cpp slot (from /slots) writing an answer, not one of the bot's one-token reads."""
    return slot["is_processing"] and slot.get("params", {}).get("n_predict", 0) > 1


async def generating(client: httpx.AsyncClient, llm_url: str) -> set[int]:
    """The task ids of the answers llama.cpp's slots are writing now."""
    slots = (await client.get(f"{llm_url}/slots")).json()
    return {slot["id_task"] for slot in slots if writing_answer(slot)}


async def cancelled_in_llm_log(task: int) -> bool:
    """Whether llama.cpp logged that task `task` was cancelled (its client went away before
    the answer was complete), as opposed to ending it at the end of its answer."""
    line = f"cancel task, id_task = {task}\n"
    for _ in range(50):  # llama.cpp writes its log from a thread of its own: give it 5 s
        if line in LLM_LOG.read_text(errors="replace"):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_going_on_after_a_pause_drops_the_prepared_answer(stack, patient_bot):
    first, rest = spoken("Why is the sky blue?"), spoken("And why are sunsets red?")
    caller = Caller(patient_bot)
    await caller.connect()
    try:
        await greeting_of(caller)
        async with httpx.AsyncClient(timeout=5) as client:
            # The greeting primes the LLM with the persona: let that request finish first.
            for _ in range(200):
                if not await generating(client, stack.llm_url):
                    break
                await asyncio.sleep(0.05)
            turns = len(caller.server_messages("latency"))
            outputs = len(caller.of_type("bot-output"))
            asked = time.monotonic()
            caller.mic.say(first)
            # The caller pauses until the first half is being answered (speculatively: the turn
            # is open for seconds yet) ...
            before: set[int] = set()
            while not before:
                late = time.monotonic() - caller.mic.speech_end()
                assert late < PATIENT_VAD_STOP_SECS - 0.5, "nothing was answered at the pause"
                before = await generating(client, stack.llm_url)
                await asyncio.sleep(0.03)
            # ... then goes on at once, while that answer is being written.
            caller.mic.say(rest)
            after: set[int] = set()
            while time.monotonic() < caller.mic.speech_end():
                after |= await generating(client, stack.llm_url)
                await asyncio.sleep(0.03)
            withdrawn = before & after
            assert withdrawn, f"the answer {before} was not written on as the caller went on"
            # It is stopped: the bot cancels the request, and llama.cpp says so, rather than
            # ending it at the end of its answer. (How soon depends on the VAD and on the
            # machine's load: behaviour, not time.)
            for _ in range(200):
                if not await generating(client, stack.llm_url) & withdrawn:
                    break
                await asyncio.sleep(0.05)
        for task in withdrawn:
            assert await cancelled_in_llm_log(task), f"task {task} was not cancelled"

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
        unread_at = 0.0  # when the last look at the slots that found no read-ahead was asked
        seen: set[tuple] = set()  # (slot, task, prompt tokens, tokens to predict)
        async with httpx.AsyncClient(timeout=5) as client:
            asked = time.monotonic()
            caller.mic.say(read_wav(FIXTURES / "questions" / "sky.wav"))
            deadline = asked + 60
            while primed is None and time.monotonic() < deadline:
                looked = time.monotonic()
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
                        primed = (task, tokens)
                if primed is None:
                    unread_at = looked
                await asyncio.sleep(0.02)
        assert answer is not None, "the answer's request was never seen generating"
        assert primed is not None, f"nothing read after the answer {answer}: {sorted(seen)}"
        # The answer is over once the bot has been quiet a while (a loaded machine may leave
        # short gaps between its sentences). Its last sound must come after the last look at
        # the slots that found nothing read yet: then the read came while it was speaking.
        await caller.wait_for(
            lambda: (
                not caller.bot_speaking()
                and time.monotonic() - (caller.last_sound_after(asked) or asked) > 1.5
            ),
            90,
            "the answer to end",
        )
        last_sound = caller.last_sound_after(asked)
        assert last_sound is not None, "no answer was heard"
        assert unread_at < last_sound, (
            f"the conversation was not yet read {unread_at - last_sound:.2f}s after the answer's "
            "last sound"
        )
    finally:
        await caller.close()


LAUNCHED = re.compile(r"launch_slot_: id +(\d+) \| task (\d+) \|")
ENDED = re.compile(r"release: id +\d+ \| task (\d+) \| stop processing")
ONE_TOKEN = re.compile(
    r"print_timing: id +\d+ \| task (\d+) \| +eval time = +[\d.]+ ms / +1 tokens"
)


async def answers_in_llm_log(since: int) -> dict[int, int]:
    """{task: slot} of the answers llama.cpp's log shows launched after byte `since`, once
    each has ended (llama.cpp writes its log from a thread of its own). An answer is a task
    that did not end after one token, as the bot's reads of the conversation do; the guard's
    cut or a withdrawn answer ends one cancelled, without timings."""
    for _ in range(50):
        text = LLM_LOG.read_bytes()[since:].decode(errors="replace")
        launched = {int(task): int(slot) for slot, task in LAUNCHED.findall(text)}
        if launched.keys() <= {int(task) for task in ENDED.findall(text)}:
            break
        await asyncio.sleep(0.1)
    reads = {int(task) for task in ONE_TOKEN.findall(text)}
    return {task: slot for task, slot in launched.items() if task not in reads}


async def two_calls_keep_their_own_slots(bot_url: str) -> None:
    """Two calls at once, each asking a question in turn: llama.cpp's log shows each one's
    answers written in one slot, and not the same one."""
    first, second = Caller(bot_url), Caller(bot_url)
    await first.connect()
    try:
        await greeting_of(first)
        await second.connect()
        try:
            await greeting_of(second)
            slots, tasks = [], []
            for caller in (second, first):
                since = LLM_LOG.stat().st_size
                await ask(caller, read_wav(FIXTURES / "questions" / "sky.wav"))
                tasks.append(await answers_in_llm_log(since))
                slots.append(set(tasks[-1].values()))
        finally:
            await second.close()
    finally:
        await first.close()
    assert all(len(seen) == 1 for seen in slots), f"an answer moved between slots: {tasks}"
    assert slots[0] != slots[1], f"both calls were answered in the same slot: {tasks}"


async def test_each_call_keeps_to_its_own_llama_cpp_slot(stack):
    """Two calls at once: each one's answers are written in a slot of its own, so neither
    overwrites the other's cached conversation."""
    await two_calls_keep_their_own_slots(stack.bot_url)


def sentences(text: str) -> list[str]:
    """Sentences as a listener counts them: ended by . ! or ? and any closing quotes, with words."""
    return [s for s in re.split(r"(?<=[.!?])[\"'”’)\]]*\s+", text.strip()) if re.search(r"\w", s)]


async def test_answers_are_short_and_never_loop(stack):
    """On the kit's recordings: one to three sentences, at most 60 words, no phrase twice, and
    none left half said."""
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
            # The token limit (LLM_MAX_TOKENS) never leaves a later sentence half said.
            *earlier, last = sentences(answer)
            assert not earlier or last.rstrip("\"')")[-1] in ".!?", f"{name}: cut off: {answer}"
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
