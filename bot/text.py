"""How the LLM's streamed text is cut into pieces for the TTS server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

from bot.answers import SENTENCE_END

# A word ending a clause: comma, semicolon, colon or dash.
_CLAUSE_END = re.compile(r"[,;:—–]$")
# Words that open a new phrase: a piece can end just before one and still sound whole.
_PHRASE_START = frozenset(
    {
        *("and", "but", "or", "so", "because", "since", "although", "though"),
        *("by", "from", "with", "without", "in", "on", "at", "for", "like", "of", "about"),
        *("into", "through", "during", "around", "over", "across", "as", "than", "using"),
        *("called", "due"),
        *("that", "which", "who", "when", "where", "while", "if", "until", "after", "before"),
        # a long subject's verb, an infinitive: "The tallest mountain in the world | is ..."
        *("is", "are", "was", "were", "to"),
    }
)

# A sentence's end followed by nothing but a space: how the answer guard passes a finished
# sentence on while it holds the next one until that is whole too.
_PASSED_ON = re.compile(SENTENCE_END.pattern + "$")

# Words a noun phrase starts with: a long first piece is better cut before one than inside it.
_NOUN_START = frozenset(
    {"a", "an", "the", "this", "these", "those", "my", "your", "its", "our", "their", "some"}
)


class FirstClauseAggregator(SimpleTextAggregator):
    """Whole sentences, except that each response's first piece ends early, and so does a
    sentence that runs on.

    The bot cannot start speaking before the TTS server has a piece of text, so the first piece
    decides the latency; a small LLM on a CPU writes a long first sentence in several hundred
    milliseconds. Once the first piece has `min_words` words it ends at a clause break, or just
    before a word that opens a new phrase ("Bees make honey | by collecting nectar"), and after
    `max_words` in any case, then before an article or a possessive if one of the last words is
    ("It's | a natural behaviour", not "It's a natural | behaviour"). Every later piece is a whole
    sentence, which reads most naturally, unless the sentence runs past `long_words`: it then
    ends the same way, by `max_long_words` at the latest. Otherwise the caller hears silence
    mid-answer while it is written (seen: "The ocean is salty", then 3 s of nothing while the
    LLM wrote 107 tokens of one sentence). A sentence is passed on as soon as the answer guard
    lets it through, without Pipecat's look at the next sentence's first letter: the guard
    holds that sentence until it is whole (a short first sentence, "It's both!", used to wait
    0.9-1.4 s for the one after it).

    On the benchmark's answers (SmolLM2-135M, four runs) one first piece in five ran to the old
    limit of 8 words; each word is about 1.3 tokens, 25-30 ms apiece while the LLM shares the CPU.
    """

    def __init__(
        self,
        *,
        min_words: int = 3,
        max_words: int = 6,
        long_words: int = 12,
        max_long_words: int = 20,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._min_words = min_words
        self._max_words = max_words
        self._long_words = long_words
        self._max_long_words = max_long_words
        self._first = True

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        async for aggregation in super().aggregate(text):
            self._first = False
            yield aggregation
        if self._aggregation_type != TextType.SENTENCE:
            return
        while cut := self._cut_here():  # never 0: a piece has words
            head, self._text = self._text[:cut].strip(), self._text[cut:].lstrip()
            self._first = False
            yield Aggregation(text=head, type=TextType.SENTENCE)
        if _PASSED_ON.search(self._text):
            # Pipecat's lookahead would wait for the next sentence's first letter, which the
            # guard sends only once that sentence is written to its end (seen: "It's actually
            # both!" spoken 0.86 s late, together with the sentence after it).
            whole = await super().flush()
            if whole and whole.text.strip():
                self._first = False
                yield Aggregation(text=whole.text.strip(), type=TextType.SENTENCE)

    def _cut_here(self) -> int | None:
        if self._first:
            return self._cut(self._min_words, self._max_words)
        return self._cut(self._long_words, self._max_long_words)

    def _cut(self, min_words: int, max_words: int) -> int | None:
        """Where the piece may end, among the words written in full so far."""
        words = list(re.finditer(r"\S+", self._text))
        if words and not self._text[-1].isspace():
            words.pop()  # still being written
        for count, word in enumerate(words):
            if count >= min_words and word.group().lower() in _PHRASE_START:
                return word.start()
            if count + 1 >= min_words and _CLAUSE_END.search(word.group()):
                return word.end()
        if len(words) >= max_words:
            for word in reversed(words[min_words:max_words]):
                if word.group().lower() in _NOUN_START:
                    return word.start()
            return words[max_words - 1].end()
        return None

    async def flush(self) -> Aggregation | None:
        self._first = True  # the next text starts a new response
        return await super().flush()

    async def handle_interruption(self) -> None:
        self._first = True
        await super().handle_interruption()
