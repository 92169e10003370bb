"""Answers made for the ear: short, and never a loop.

Small models (and tired big ones) ramble: 90 to 270 words per answer, or the same clause ten
times until the token limit. Sampling penalties make that rarer; `AnswerGuard` makes it
impossible. The first sentence streams through as it comes (it decides the latency); every later
sentence is held until it ends, and spoken only if it is new and fits the budget; one the token
limit cuts off mid-way is not spoken at all.
"""

from __future__ import annotations

import re

# The space after a sentence: after . ! or ?, or after up to two closing quotes or brackets
# behind one ('healthy."" That's', as a small model writes), but not after a title, an initial
# or "e.g." ("Dr. Seuss", "J. K. Rowling"), which would otherwise be spoken as sentences of their
# own. Python's look-behinds are fixed-width, hence one per number of closing marks.
_CLOSE = "[\"'”’)\\]]"
SENTENCE_END = re.compile(
    rf"(?:(?<=[.!?])|(?<=[.!?]{_CLOSE})|(?<=[.!?]{_CLOSE}{_CLOSE}))"
    r"(?<!\b(?:Mr|Ms|Dr|St|Jr|Sr|vs)\.)(?<!\bMrs\.)(?<!\b[A-Z]\.)(?<!\b[a-z]\.[a-z]\.)\s+"
)
_WORD = re.compile(r"[a-z0-9']+")
# An n-gram of this length seen again means the answer is going round in circles.
_LOOP_NGRAM = 4


def words(text: str) -> list[str]:
    """The words of `text` as the guard counts them (a dash or a bracket is none)."""
    return _WORD.findall(text.lower())


class AnswerGuard:
    """Cuts one streamed answer to at most `max_sentences` sentences and `max_words` words,
    and ends it where it starts repeating itself. One guard per call; `reset` per answer."""

    def __init__(self, *, max_words: int = 60, max_sentences: int = 3):
        self.max_words = max_words
        self.max_sentences = max_sentences
        self.reset()

    def reset(self) -> None:
        self._pending = ""  # text not yet passed on
        self._sentences = 0  # sentences passed on
        self._spoken: list[str] = []  # words passed on
        self._ngrams: set[tuple[str, ...]] = set()
        self._said: set[tuple[str, ...]] = set()  # each sentence's words
        self._sentence_start = 0  # where the current sentence's words start in _spoken
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of `text` to speak now; once `stopped`, nothing more."""
        if self.stopped:
            return ""
        *finished, self._pending = SENTENCE_END.split(self._pending + text)
        out = []
        for sentence in finished:
            out.append(
                self._stream(sentence) + " " if self._sentences == 0 else self._whole(sentence)
            )
            if self.stopped:
                return "".join(out).rstrip()
            self._end_sentence()
        if self._sentences == 0:
            # The first sentence streams as it comes: all of it but a word still being written.
            unfinished = re.split(r"\s", self._pending)[-1]
            head = self._pending[: len(self._pending) - len(unfinished)]
            self._pending = unfinished
            out.append(self._stream(head))
        return "".join(out)

    def flush(self, *, complete: bool = True) -> str:
        """What is left when the answer ends: a last sentence without its full stop. Unless the
        answer is `complete` (it hit the token limit): a later sentence cut off mid-way is
        dropped rather than spoken as a fragment."""
        rest, self._pending = self._pending, ""
        if self.stopped or not rest.strip() or (not complete and self._sentences):
            return ""
        return self._stream(rest) if self._sentences == 0 else self._whole(rest).rstrip()

    def _end_sentence(self) -> None:
        self._sentences += 1
        self._said.add(tuple(self._spoken[self._sentence_start :]))
        self._sentence_start = len(self._spoken)

    def _stream(self, text: str) -> str:
        """Pass on words of the first sentence until one breaks the budget or loops."""
        kept = ""
        for token in re.split(r"(\s+)", text):
            if not all(self._admit(word) for word in words(token)):
                self.stopped = True
                return kept.rstrip()
            kept += token
        return kept

    def _whole(self, sentence: str) -> str:
        """A later sentence, spoken only if it is new and fits; else the answer ends here."""
        sentence_words = words(sentence)
        context = self._spoken[-(_LOOP_NGRAM - 1) :] + sentence_words
        grams = [tuple(context[i : i + _LOOP_NGRAM]) for i in range(len(context) - _LOOP_NGRAM + 1)]
        if (
            not sentence_words
            or self._sentences >= self.max_sentences
            or len(self._spoken) + len(sentence_words) > self.max_words
            or tuple(sentence_words) in self._said
            or len(set(grams)) < len(grams)
            or self._ngrams.intersection(grams)
        ):
            self.stopped = True
            return ""
        for word in sentence_words:
            self._admit(word)
        return sentence + " "

    def _admit(self, word: str) -> bool:
        """Count a word as spoken; False if it breaks the budget or completes a repeated n-gram."""
        if len(self._spoken) >= self.max_words:
            return False
        gram = (*self._spoken[-(_LOOP_NGRAM - 1) :], word)
        if len(gram) == _LOOP_NGRAM:
            if gram in self._ngrams:
                return False
            self._ngrams.add(gram)
        self._spoken.append(word)
        return True
