"""The kit's LLM service against the e2e stack's real llama.cpp server.

A withdrawn answer stops in the server: its slot is free again at once, whenever the answer is
withdrawn (before the server answers, just as its stream opens, while it writes), as a turn the
caller resumed withdraws it. The moment is chosen by wrapping the service's own OpenAI client.

An answer the token limit cuts off is spoken to its last whole sentence."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pipecat.frames.frames import LLMContextFrame, LLMTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.tests.utils import run_test

from bot.answers import AnswerGuard
from bot.llm import KitLLMService

pytestmark = pytest.mark.e2e

SLOT = 1  # the server has two; a call the bot holds would take the first free one
TOKENS = 1500  # ~10 s or more of writing: far longer than any check below


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
    llm = KitLLMService(
        guard=AnswerGuard(max_words=10_000, max_sentences=10_000),
        timeout_secs=30,
        slot=SLOT,
        base_url=f"{stack.llm_url}/v1",
        api_key="none",
        settings=KitLLMService.Settings(
            model="local",
            system_instruction="You tell long stories.",
            max_tokens=TOKENS,
            extra={"extra_body": {"ignore_eos": True}},
        ),
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
    llm = KitLLMService(
        guard=AnswerGuard(),
        timeout_secs=30,
        base_url=f"{stack.llm_url}/v1",
        api_key="none",
        settings=KitLLMService.Settings(
            model="local",
            system_instruction="You are a teacher. Answer in short sentences.",
            max_tokens=25,
            temperature=0.0,
        ),
    )
    context = LLMContext([{"role": "user", "content": "Tell me three facts about cats."}])
    down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
    spoken = "".join(f.text for f in down if isinstance(f, LLMTextFrame)).strip()
    assert llm._answer is not None and llm._answer.finish_reason == "length"
    assert spoken and spoken[-1] in ".!?", f"half a sentence was spoken: {spoken!r}"
