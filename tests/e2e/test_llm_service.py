"""The kit's LLM service against the e2e stack's real llama.cpp server.

A withdrawn answer stops in the server: its slot is free again at once, whenever the answer is
withdrawn (before the server answers, just as its stream opens, while it writes), as a turn the
caller resumed withdraws it. The moment is chosen by wrapping the service's own OpenAI client.

An answer the token limit cuts off is spoken to its last whole sentence. A chat template that
refuses the note that the caller cut in still gets it, in the caller's next words."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pipecat.frames.frames import ErrorFrame, LLMContextFrame, LLMTextFrame, MetricsFrame
from pipecat.metrics.metrics import LLMUsageMetricsData
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import SleepFrame, run_test

from bot.answers import AnswerGuard
from bot.llm import KitLLMService
from bot.playout import CUT_NOTE, heard_only
from bot.stt import WordsSoFarFrame

pytestmark = pytest.mark.e2e

SLOT = 1  # the server has two; a call the bot holds would take the first free one
TOKENS = 1500  # ~10 s or more of writing: far longer than any check below


def local_llm(llm_url: str, *, guard: AnswerGuard | None = None, timeout_secs: float = 30,
              **kwargs) -> KitLLMService:  # fmt: skip
    """The kit's LLM service against a llama.cpp server at `llm_url` (model `local`)."""
    settings = KitLLMService.Settings(model="local", **kwargs.pop("settings", {}))
    return KitLLMService(
        guard=guard or AnswerGuard(),
        timeout_secs=timeout_secs,
        base_url=f"{llm_url}/v1",
        api_key="none",
        settings=settings,
        **kwargs,
    )


async def processing(client: httpx.AsyncClient, llm_url: str) -> dict:
    """The slot's task as the server reports it (`GET /slots`)."""
    slots = (await client.get(f"{llm_url}/slots")).json()
    return next(s for s in slots if s["id"] == SLOT)


async def wait_until(predicate, within: float, what: str) -> None:
    for _ in range(int(within / 0.02)):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within} s: {what}")


@pytest.mark.parametrize("moment", ["before the server answers", "as it opens", "while it writes"])
async def test_a_withdrawn_answer_frees_its_llama_cpp_slot(stack, moment):
    llm = local_llm(
        stack.llm_url,
        guard=AnswerGuard(max_words=10_000, max_sentences=10_000),
        slot=SLOT,
        settings={
            "system_instruction": "You tell long stories.",
            "max_tokens": TOKENS,
            "extra": {"extra_body": {"ignore_eos": True}},
        },
    )
    context = LLMContext([{"role": "user", "content": "Tell me a long story about a cat."}])
    tasks: dict[str, asyncio.Task] = {}
    create = llm._client.chat.completions.create

    async def withdrawing_create(**params):
        assert params["extra_body"] == {"ignore_eos": True, "id_slot": SLOT}
        if moment == "before the server answers":
            tasks["answer"].cancel()
        stream = await create(**params)
        if moment == "as it opens":
            tasks["answer"].cancel()
        return stream

    llm._client.chat.completions.create = withdrawing_create
    async with httpx.AsyncClient(timeout=5) as client:
        await wait_until(
            lambda: _idle(client, stack.llm_url), 30, "the slot idle before the answer"
        )
        answering = tasks["answer"] = asyncio.create_task(llm._process_context(context))
        if moment == "while it writes":
            await wait_until(
                lambda: _writing(client, stack.llm_url), 10, "the server writing the answer"
            )
            answering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await answering
        await wait_until(lambda: _idle(client, stack.llm_url), 2, "the slot freed")
        slot = await processing(client, stack.llm_url)
        written = slot.get("next_token", [{}])[0].get("n_decoded", 0)
        assert written < TOKENS // 2, f"the server wrote on: {written} tokens"
    await llm.cleanup()


async def _idle(client: httpx.AsyncClient, llm_url: str) -> bool:
    return not (await processing(client, llm_url))["is_processing"]


async def _writing(client: httpx.AsyncClient, llm_url: str) -> bool:
    slot = await processing(client, llm_url)
    return slot["is_processing"] and slot["next_token"][0]["n_decoded"] >= 5


async def test_an_answer_cut_by_the_token_limit_ends_at_a_whole_sentence(stack):
    # Greedy sampling: SmolLM2 writes "1. Cats are naturally curious and love to explore. They
    # enjoy learning ..." and 25 tokens end inside the second sentence.
    llm = local_llm(
        stack.llm_url,
        settings={
            "system_instruction": "You are a teacher. Answer in short sentences.",
            "max_tokens": 25,
            "temperature": 0.0,
        },
    )
    context = LLMContext([{"role": "user", "content": "Tell me three facts about cats."}])
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    spoken = "".join(f.text for f in down if isinstance(f, LLMTextFrame)).strip()
    assert llm._answer is not None and llm._answer.finish_reason == "length"
    assert spoken and spoken[-1] in ".!?", f"half a sentence was spoken: {spoken!r}"


# Gemma's and some Mistral templates end the request with an error on a system message after the
# first; llama.cpp answers 400. This one does the same in SmolLM2's ChatML.
STRICT_TEMPLATE = """{%- for m in messages -%}
{%- if m['role'] == 'system' and not loop.first -%}
{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
{%- endif -%}
<|im_start|>{{ m['role'] }}
{{ m['content'] }}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt -%}<|im_start|>assistant
{% endif -%}"""


@pytest.fixture(scope="module")
def strict_llm_url():
    """A real llama.cpp server (xllamacpp, in this process) whose chat template is strict."""
    import xllamacpp

    from scripts.llm_server import fast_bundled_gguf
    from tests.support import free_port

    params = xllamacpp.CommonParams()
    params.model.path = str(fast_bundled_gguf())
    params.hostnames = ["127.0.0.1"]
    params.port = free_port()
    params.n_ctx = 2048
    params.chat_template = STRICT_TEMPLATE
    server = xllamacpp.Server(params)
    yield f"http://127.0.0.1:{params.port}"
    del server


async def test_a_template_that_refuses_the_cut_in_note_still_gets_it_in_the_callers_words(
    strict_llm_url,
):
    llm = local_llm(
        strict_llm_url, settings={"system_instruction": "You are a teacher.", "max_tokens": 8}
    )
    sent: list[list[dict]] = []
    create = llm._client.chat.completions.create

    async def recording_create(**params):
        sent.append(params["messages"])
        return await create(**params)

    llm._client.chat.completions.create = recording_create
    context = LLMContext([{"role": "user", "content": "Tell me about cats."}])
    heard_only(context, said="Cats sleep a lot. They hunt at night.", heard="Cats sleep a lot.")
    context.add_message({"role": "user", "content": "Wait, stop."})
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    assert "".join(f.text for f in down if isinstance(f, LLMTextFrame)).strip(), "no answer"
    assert any(m.get("content") == CUT_NOTE for m in sent[0])  # refused
    later = sent[1:]  # the answer, then the read-ahead of the conversation with it
    assert later and all(m.get("content") != CUT_NOTE for request in later for m in request)
    assert sent[1][-1]["content"] == f"({CUT_NOTE}) Wait, stop."
    assert [m["role"] for m in sent[1]][1:] == ["user", "assistant", "user"]
    await llm.cleanup()


async def test_a_slow_model_is_not_taken_for_a_dead_one(stack):
    """A prompt that takes the server far longer to read than the deadline: the server's slot
    says it is working on it, so the answer is waited for (a hung server is not: the recovery
    tests stop one with SIGSTOP)."""
    deadline = 0.2
    llm = local_llm(stack.llm_url, timeout_secs=deadline, slot=SLOT, settings={"max_tokens": 5})
    # About 2400 tokens the server has never read (within its 4096 a slot): seconds on two cores.
    story = " ".join(f"On day {n} the {n % 7}th cat sat on mat number {n * 13}." for n in range(70))
    context = LLMContext([{"role": "user", "content": f"{story} Which mat was the last?"}])
    start = asyncio.get_running_loop().time()
    down, up = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    waited = asyncio.get_running_loop().time() - start
    assert waited > 3 * deadline, f"the prompt was read in {waited:.2f} s: nothing to wait for"
    assert not [f for f in [*down, *up] if isinstance(f, ErrorFrame)], [*down, *up]
    assert "".join(f.text for f in down if isinstance(f, LLMTextFrame)).strip()
    await llm.cleanup()


async def test_the_callers_words_read_ahead_leave_only_the_last_to_read(stack):
    """The words so far, read into the call's slot while the caller speaks: the turn's request
    then finds them in the server's cache; words the final transcript changed are read again."""
    persona = "You are a friendly teacher. Answer in one short sentence."
    context = LLMContext([{"role": "system", "content": persona}])
    llm = local_llm(stack.llm_url, slot=SLOT, context=context, settings={"max_tokens": 4})
    so_far = "Why do cats like to sleep in boxes, and why do dogs"
    final = f"{so_far} like to chase the little red ball?"
    asked = LLMContext([*context.get_messages(), {"role": "user", "content": final}])
    down, _ = await run_test(
        llm,
        frames_to_send=[WordsSoFarFrame(so_far), SleepFrame(3), LLMContextFrame(asked)],
        pipeline_params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
    )
    [usage] = [d for f in down if isinstance(f, MetricsFrame) for d in f.data
               if isinstance(d, LLMUsageMetricsData)]  # fmt: skip
    read_before = usage.value.cache_read_input_tokens or 0
    assert read_before > 20, usage.value  # the persona and the words so far, from the cache
    assert usage.value.prompt_tokens - read_before < 20, usage.value  # the last words only
    assert "".join(f.text for f in down if isinstance(f, LLMTextFrame)).strip()
    await llm.cleanup()


async def test_a_sliding_history_window_is_not_read_again(stack):
    """The bot's window drops the oldest exchange after each answer: the exchanges it keeps are
    shifted in the server's cache (llama.cpp's cache reuse), not read again."""
    persona = {"role": "system", "content": "You are Miss Harper, a friendly teacher."}
    exchanges = [
        ("Why is the sky blue?", "Sunlight bounces off tiny bits of air, and blue light "
         "bounces the most, so the whole sky glows blue above us on a sunny day."),
        ("What do bees eat?", "Bees drink sweet nectar from flowers and eat pollen, which "
         "gives them protein; they carry both home to feed the whole hive."),
        ("How tall is a giraffe?", "A grown giraffe can be as tall as five metres, taller "
         "than a double-decker bus, and its neck alone is about two metres long."),
        ("Can fish sleep?", "Fish do rest, although they have no eyelids to close; many "
         "float still near the bottom or hide among rocks while they take a break."),
    ]  # fmt: skip

    def window(first: int, question: str) -> list[dict]:
        messages = [persona]
        for asked, answered in exchanges[first : first + 3]:
            messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]  # fmt: skip
        return [*messages, {"role": "user", "content": question}]

    async def read(client: httpx.AsyncClient, messages: list[dict]) -> tuple[int, int]:
        body = {"model": "local", "messages": messages, "max_tokens": 1, "id_slot": SLOT,
                "cache_prompt": True, "temperature": 0}  # fmt: skip
        reply = (await client.post(f"{stack.llm_url}/v1/chat/completions", json=body)).json()
        return reply["timings"]["prompt_n"], reply["usage"]["prompt_tokens"]

    async with httpx.AsyncClient(timeout=60) as client:
        await read(client, window(0, "Do cats dream?"))
        read_again, prompt = await read(client, window(1, "Why do owls hoot?"))
    # The new exchange and the question are new to the slot: about a third of the prompt.
    assert read_again < prompt / 2, (read_again, prompt)
