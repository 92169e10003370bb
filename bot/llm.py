"""The bot's LLM client: any OpenAI-compatible server, answers cut by `AnswerGuard`.

When the guard ends an answer, the stream is closed at once: the server stops generating (a
llama.cpp slot, an Ollama or vLLM request freed), rather than writing on to the token limit
while the CPU is needed for speech.
"""

from __future__ import annotations

from typing import Any

from loguru import logger
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.llm import OpenAILLMService

from bot.answers import AnswerGuard


class _AnswerEnded(Exception):
    """The guard has ended the answer; raised through the stream to close it."""


class KitLLMService(OpenAILLMService):
    """`OpenAILLMService` whose answers pass through an `AnswerGuard`."""

    def __init__(self, *, guard: AnswerGuard, **kwargs: Any):
        super().__init__(**kwargs)
        self._guard = guard

    async def _process_context(self, context: LLMContext) -> None:
        self._guard.reset()
        try:
            await super()._process_context(context)
        except _AnswerEnded:
            logger.debug(f"{self}: answer ended by the guard; generation stopped")
        if rest := self._guard.flush():
            await super()._push_llm_text(rest)

    async def _push_llm_text(self, text: str) -> None:
        if spoken := self._guard.feed(text):
            await super()._push_llm_text(spoken)
        if self._guard.stopped:
            raise _AnswerEnded
