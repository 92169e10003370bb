"""How long the bot waits for the LLM server: deadlines that follow the model's usual pace
(`Pace`), and are extended while the server says it is alive (`within`); an answer's stream
under them (`AnswerStream`). A server that stays silent past them is `LLMStalled`."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from loguru import logger


class LLMStalled(Exception):
    """The LLM server went quiet for longer than its deadline."""


class Pace:
    """How long the server in use takes to answer, over its recent answers: the deadlines and
    the filler follow it, so that a slow model is not taken for a dead one (shared by the
    process's calls, by server and model: `Pace.of`)."""

    _servers: ClassVar[dict[tuple[str, str], Pace]] = {}
    KEPT = 20  # answers remembered
    FIRST_TOKEN_MARGIN = 3.0  # the deadline: this many times the usual first token, at least
    FIRST_WORDS_MARGIN = 1.5  # the filler: this many times the usual wait for the first words

    SPEECH_WORDS_PER_SEC = 3.0  # the bot's voices say about 3-4 words a second

    def __init__(self) -> None:
        self.first_token: deque[float] = deque(maxlen=self.KEPT)  # request → first chunk
        self.first_words: deque[float] = deque(maxlen=self.KEPT)  # turn confirmed → words
        self.words_per_sec: deque[float] = deque(maxlen=self.KEPT)  # as the answers are written
        self.warned = False  # that it writes slower than the bot speaks

    @classmethod
    def of(cls, base_url: str, model: str) -> Pace:
        return cls._servers.setdefault((base_url, model), cls())

    @staticmethod
    def _usual(secs: deque[float]) -> float:
        return statistics.median(secs) if len(secs) >= 3 else 0.0

    def deadline(self, floor: float) -> float:
        return max(floor, self.FIRST_TOKEN_MARGIN * self._usual(self.first_token))

    def filler_after(self, floor: float) -> float:
        return max(floor, self.FIRST_WORDS_MARGIN * self._usual(self.first_words))

    def slower_than_speech(self) -> bool:
        """Whether the model usually writes fewer words a second than the bot says: its answers
        then pause mid-sentence, whatever the bot does."""
        usual = self._usual(self.words_per_sec)
        return 0 < usual < self.SPEECH_WORDS_PER_SEC


Patience = Callable[[], Awaitable[bool]]


async def within(
    secs: float,
    step: Awaitable[Any],
    patience: Patience | None,
    what: str,
    orphan: Callable[[Any], Awaitable[Any]] | None = None,
) -> Any:
    """`step`'s result, if it comes within `secs`, or later while `patience` says the server is
    still working on it (asked every `secs`, up to _MAX_PATIENCE_SECS); else LLMStalled. The step
    runs on undisturbed while the server is asked: a stream's read is never cut half way. A
    result that comes as the wait is given up (or cancelled) goes to `orphan` (a stream: closed,
    so that the server stops writing it)."""
    task = asyncio.ensure_future(step)
    waited = 0.0
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=secs)
            if done:
                result = task.result()
                task = None
                return result
            waited += secs
            if patience is None or waited >= _MAX_PATIENCE_SECS or not await patience():
                raise LLMStalled(f"the language model {what} {waited:g} s")
            logger.debug(f"LLM still working after {waited:g} s; waiting on")
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                late = await task
                if orphan is not None:
                    await orphan(late)


# However alive the server says it is, an answer that has not begun after this long is given up
# (a server whose model has hung, while its HTTP threads still answer).
_MAX_PATIENCE_SECS = 60.0


class AnswerStream:
    """A chunk stream whose every next chunk must come within `secs`, or while the server is
    still working on it (`patience`)."""

    def __init__(self, stream: Any, secs: float, patience: Patience | None = None):
        self._stream = stream
        self._chunks = stream.__aiter__()
        self._secs = secs
        self._patience = patience
        self._closed = False
        self.finish_reason: str | None = None  # the server's, once it sends one
        self.on_first: Callable[[], object] | None = None  # called as the first chunk comes

    def __aiter__(self) -> AnswerStream:
        return self

    async def __anext__(self) -> Any:
        chunk = await within(
            self._secs, self._chunks.__anext__(), self._patience, "sent nothing for"
        )
        if self.on_first is not None:
            self.on_first, first = None, self.on_first
            first()
        if chunk.choices and chunk.choices[0].finish_reason:
            self.finish_reason = chunk.choices[0].finish_reason
        return chunk

    async def aclose(self) -> None:
        """Close the HTTP stream (once, however often the caller asks)."""
        if self._closed:
            return
        self._closed = True
        if hasattr(self._chunks, "aclose"):
            await self._chunks.aclose()
        await self._stream.close()
