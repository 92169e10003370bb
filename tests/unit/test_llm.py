"""What the LLM is sent of the call: the persona and the recent exchanges only."""

from __future__ import annotations

import asyncio

import pytest
from openai.types.chat import ChatCompletionChunk

from bot.answers import AnswerGuard
from bot.deadlines import AnswerStream, LLMStalled, Pace, within
from bot.llm import KitLLMService, has_late_note, notes_folded, recent

SYSTEM = {"role": "system", "content": "You are Miss Harper."}
GREETING = {"role": "assistant", "content": "Hello!"}


def exchange(n: int) -> list[dict]:
    return [{"role": "user", "content": f"q{n}"}, {"role": "assistant", "content": f"a{n}"}]


def call(exchanges: int, asking: bool) -> list[dict]:
    messages = [SYSTEM, GREETING]
    for n in range(1, exchanges + 1):
        messages += exchange(n)
    if asking:
        messages.append({"role": "user", "content": "now"})
    return messages


def contents(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages]


def service(slot: int | None = None, history_turns: int = 0, **settings) -> KitLLMService:
    """The kit's LLM service, pointed at a port nothing listens on (requests are only built)."""
    return KitLLMService(
        guard=AnswerGuard(),
        timeout_secs=5,
        slot=slot,
        history_turns=history_turns,
        base_url="http://127.0.0.1:9/v1",
        api_key="none",
        settings=KitLLMService.Settings(model="local", **settings),
    )


def test_a_question_is_sent_with_the_persona_and_the_last_exchanges():
    sent = recent(call(5, asking=True), 2)
    assert contents(sent) == ["You are Miss Harper.", "q4", "a4", "q5", "a5", "now"]


def test_what_primes_the_cache_is_the_prefix_of_the_next_question():
    """Primed after answer 5, asked question 6: the same window, so the cache is reused."""
    primed = recent(call(5, asking=False), 2)
    asked = recent(call(5, asking=True), 2)
    assert asked[: len(primed)] == primed
    assert contents(primed) == ["You are Miss Harper.", "q4", "a4", "q5", "a5"]


@pytest.mark.parametrize("turns", [0, 3])
def test_a_short_call_or_no_window_sends_everything(turns):
    short = call(2, asking=True)
    assert recent(short, 3) == short
    assert recent(call(9, asking=True), 0) == call(9, asking=True)
    assert recent([SYSTEM, GREETING], turns) == [SYSTEM, GREETING]


def test_the_service_sends_the_window_in_its_request():
    llm = service(history_turns=1)
    params = llm.build_chat_completion_params({"messages": call(4, asking=True)})
    assert contents(params["messages"]) == ["You are Miss Harper.", "q4", "a4", "now"]


@pytest.mark.parametrize(("slot", "body"), [(2, {"id_slot": 2}), (None, None)])
def test_a_call_keeps_to_its_llama_cpp_slot(slot, body):
    llm = service(slot)
    params = llm.build_chat_completion_params({"messages": call(1, asking=True)})
    assert params.get("extra_body") == body


@pytest.mark.parametrize("slot", [3, None])
def test_the_settings_own_extra_body_is_kept_beside_the_slot(slot):
    llm = service(slot, extra={"extra_body": {"top_k": 20}})
    params = llm.build_chat_completion_params({"messages": call(1, asking=True)})
    slot_body = {} if slot is None else {"id_slot": slot}
    assert params["extra_body"] == {"top_k": 20, **slot_body}


def chunk(text: str, finish_reason: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "local",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish_reason}],
        }
    )


class Chunks:
    """What an OpenAI stream yields, in order."""

    def __init__(self, *chunks: ChatCompletionChunk):
        self._chunks = iter(chunks)

    def __aiter__(self):
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("reason", ["length", "stop"])
async def test_the_answer_stream_keeps_why_the_server_ended_it(reason):
    stream = AnswerStream(Chunks(chunk("Salt"), chunk(" comes", reason)), secs=5)
    assert [c.choices[0].delta.content async for c in stream] == ["Salt", " comes"]
    assert stream.finish_reason == reason


def test_a_late_note_goes_into_the_callers_next_words_where_the_template_wants_that():
    note = {"role": "system", "content": "You were cut off."}
    cut = [SYSTEM, GREETING, *exchange(1), note, {"role": "user", "content": "stop"}]
    assert has_late_note(cut) and not has_late_note([SYSTEM, SYSTEM, GREETING])
    folded = notes_folded(cut)
    assert [m["role"] for m in folded] == ["system", "assistant", "user", "assistant", "user"]
    assert folded[-1]["content"] == "(You were cut off.) stop"
    assert notes_folded([*cut[:-1]]) == [SYSTEM, GREETING, *exchange(1)]  # nothing to carry it
    assert notes_folded([SYSTEM, SYSTEM, GREETING]) == [SYSTEM, SYSTEM, GREETING]  # the persona


async def test_a_server_still_working_is_waited_for_and_a_silent_one_is_not():
    async def late(result: str, secs: float) -> str:
        await asyncio.sleep(secs)
        return result

    asked: list[float] = []

    async def working() -> bool:
        asked.append(asyncio.get_running_loop().time())
        return True

    async def hung() -> bool:
        return False

    assert await within(0.05, late("words", 0.3), working, "sent nothing for") == "words"
    assert len(asked) >= 3  # asked again at every deadline
    with pytest.raises(LLMStalled, match=r"sent nothing for 0\.05 s"):
        await within(0.05, late("words", 0.3), hung, "sent nothing for")
    with pytest.raises(LLMStalled):
        await within(0.05, late("words", 0.3), None, "sent nothing for")


def test_the_deadline_and_the_filler_follow_the_models_usual_pace():
    pace = Pace()
    assert (pace.deadline(4.5), pace.filler_after(2.0)) == (4.5, 2.0)  # nothing measured yet
    pace.first_token.extend([0.1, 0.2, 0.15])  # a fast model: the settings stand
    pace.first_words.extend([0.3, 0.5, 0.4])
    assert (pace.deadline(4.5), pace.filler_after(2.0)) == (4.5, 2.0)
    pace.first_token.extend([2.5] * 5)  # an 8B model on two cores
    pace.first_words.extend([2.0] * 5)
    assert pace.deadline(4.5) == pytest.approx(7.5) and pace.filler_after(2.0) == pytest.approx(3.0)
    assert (
        Pace.of("http://a/v1", "m")
        is Pace.of("http://a/v1", "m")
        is not Pace.of("http://b/v1", "m")
    )


def test_a_model_that_writes_slower_than_the_bot_speaks_is_told_apart():
    pace = Pace()
    assert not pace.slower_than_speech()  # nothing measured
    pace.words_per_sec.extend([9.0, 11.0, 10.0])  # SmolLM2-135M
    assert not pace.slower_than_speech()
    pace.words_per_sec.extend([1.6] * 5)  # an 8B model's twin on two cores
    assert pace.slower_than_speech()
