"""How the LLM's streamed text is cut into pieces for the TTS server."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable

from pipecat.utils.text.base_text_aggregator import Aggregation, TextType
from pipecat.utils.text.simple_text_aggregator import SimpleTextAggregator

from bot import pipecat_compat
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

    A model that writes little faster than the voice speaks (a 1.7B model on two cores: seven
    words a second, the voice three) would still leave the caller in silence while a later piece
    fills up to `long_words`. So the cutter keeps an estimate of when the pieces passed on will
    have been spoken (`spoken` tells it the voice's pace and the TTS server's lead, as measured),
    and once that moment is less than a lead away, the words written so far go on as a piece of
    their own, ended at the best break among them (`min_words` at least). A fast model is never
    cut this way: its sentences are whole long before the voice gets to them.
    """

    def __init__(
        self,
        *,
        min_words: int = 3,
        max_words: int = 6,
        long_words: int = 12,
        max_long_words: int = 20,
        words_per_sec: float = 3.0,
        lead_secs: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._min_words = min_words
        self._max_words = max_words
        self._long_words = long_words
        self._max_long_words = max_long_words
        self._first = True
        self._words_per_sec = words_per_sec
        self._lead = lead_secs
        self._clock = clock
        self._spoken_by = 0.0  # when the pieces passed on will have been spoken (an estimate)

    @property
    def pace(self) -> tuple[float, float]:
        """The estimates in use: the voice's words a second, and the TTS server's lead."""
        return self._words_per_sec, self._lead

    def spoken(self, words: int, audio_secs: float, lead_secs: float) -> None:
        """What the TTS server made of one piece: `words` as `audio_secs` of speech, its first
        audio `lead_secs` after the request. Keeps running estimates of both."""
        if words >= 3 and audio_secs > 0:
            pace = min(max(words / audio_secs, 1.0), 6.0)
            self._words_per_sec = 0.8 * self._words_per_sec + 0.2 * pace
        self._lead = 0.8 * self._lead + 0.2 * min(max(lead_secs, 0.0), 2.0)

    def _passed_on(self, text: str) -> Aggregation:
        now = self._clock()
        starts = max(self._spoken_by, now + self._lead)
        self._spoken_by = starts + len(text.split()) / self._words_per_sec
        self._first = False
        return Aggregation(text=text, type=TextType.SENTENCE)

    async def aggregate(self, text: str) -> AsyncIterator[Aggregation]:
        async for aggregation in super().aggregate(text):
            yield self._passed_on(aggregation.text)
        if self.aggregation_type != TextType.SENTENCE:
            return
        while cut := self._cut_here():  # never 0: a piece has words
            held = pipecat_compat.held_text(self)
            pipecat_compat.hold_text(self, held[cut:].lstrip())
            yield self._passed_on(held[:cut].strip())
        if _PASSED_ON.search(pipecat_compat.held_text(self)):
            # Pipecat's lookahead would wait for the next sentence's first letter, which the
            # guard sends only once that sentence is written to its end (seen: "It's actually
            # both!" spoken 0.86 s late, together with the sentence after it).
            whole = await super().flush()
            if whole and whole.text.strip():
                yield self._passed_on(whole.text.strip())

    def _cut_here(self) -> int | None:
        if self._first:
            return self._cut(self._min_words, self._max_words)
        cut = self._cut(self._long_words, self._max_long_words)
        if cut is None and self._clock() + self._lead >= self._spoken_by:
            # The voice is about to run out: whatever is written in full goes on now.
            written = len(self._complete_words())
            cut = self._cut(self._min_words, max(written, self._min_words))
        return cut

    def _complete_words(self) -> list[re.Match[str]]:
        held = pipecat_compat.held_text(self)
        words = list(re.finditer(r"\S+", held))
        if words and not held[-1].isspace():
            words.pop()  # still being written
        return words

    def _cut(self, min_words: int, max_words: int) -> int | None:
        """Where the piece may end, among the words written in full so far."""
        words = self._complete_words()
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
        self._spoken_by = 0.0  # nothing is left to be spoken
        await super().handle_interruption()
