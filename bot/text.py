"""How the LLM's streamed text is cut into pieces for the TTS server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

# A clause break: comma, semicolon, colon or dash, then a space.
_CLAUSE_BREAK = re.compile(r"[,;:—–]\s")


class FirstClauseAggregator(SimpleTextAggregator):
    """Whole sentences, except that each response's first piece ends at its first clause break.

    The bot cannot start speaking before the TTS server has a piece of text, so the first piece
    decides the latency. A small LLM on a CPU takes several hundred milliseconds for a long first
    sentence; its first clause (at least `min_words` words) comes much sooner. Every later piece
    is a whole sentence, which is what reads most naturally.
    """

    def __init__(self, *, min_words: int = 4, **kwargs):
        super().__init__(**kwargs)
        self._min_words = min_words
        self._first = True

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        async for aggregation in super().aggregate(text):
            self._first = False
            yield aggregation
        if self._first and self._aggregation_type == TextType.SENTENCE:
            for match in _CLAUSE_BREAK.finditer(self._text):
                head = self._text[: match.start() + 1].strip()
                if len(head.split()) >= self._min_words:
                    self._text = self._text[match.end() :]
                    self._first = False
                    yield Aggregation(text=head, type=TextType.SENTENCE)
                    break

    async def flush(self) -> Aggregation | None:
        self._first = True  # the next text starts a new response
        return await super().flush()

    async def handle_interruption(self) -> None:
        self._first = True
        await super().handle_interruption()
