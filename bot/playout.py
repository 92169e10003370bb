"""How the bot's speech goes out: at the pace it is played, paused while the caller's voice over it
is judged, and known, when the caller cuts in, up to the word they heard.

`Playout` sits just before the output transport. It lets audio go on no more than `lead_secs`
ahead of playback (the transport and the line queue the rest of a sentence otherwise), so that:
- a pause (`pause()`, from bot/overlap.py while it judges the caller's voice) silences the bot
  within that lead, and `resume()` goes on from the very sample it stopped at; meanwhile it
  sends silence, so the bot keeps the floor (its speaking state, and the turn's latency record,
  are left alone);
- on an interruption it knows what was heard: the sentences whose audio went out, and the share
  of the current one that did (TTS gives no word timings; the words are counted pro rata).
  `heard_only` makes the conversation say that, and that the caller cut in there.

Pipecat 1.14's output transport plays its queue from one task and handles an interruption in
another: it empties the queue and says the bot stopped speaking. A chunk the playing task had
already taken out but not yet played escapes the emptying; it is played after the interruption
and says the bot started speaking again. The bot then counts as speaking until its answer ends,
so the answer never starts speaking and its turn's latency is never measured (and the caller
hears a scrap of what they talked over). Under load the gap is wide enough to land in.

`drop_stale_audio()` makes every output transport skip interruptible audio cut into chunks
before the latest interruption. Audio chunks are made as they are queued, so a chunk's frame id
(a global counter) tells whether it came before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    OutputAudioRawFrame,
    StartFrame,
    SystemFrame,
    TTSAudioRawFrame,
    TTSTextFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.utils.utils import obj_id

from bot import pipecat_compat

# Said to the LLM after an answer the caller cut into, so that the next answer responds to
# what they said rather than carrying on (a system message: a note inside the answer's own
# text was copied into later answers by small models).
CUT_NOTE = "The caller cut in here and did not hear the rest of your answer."
_PAUSE_FRAME_SECS = 0.02  # the silence sent while paused, a frame at a time
_PIECE_SECS = 0.02  # audio goes on in pieces this long at most: a pause stops it within one


class _MediaSender(BaseOutputTransport.MediaSender):
    """The output transport's sender, minus audio left over from before an interruption."""

    _cutoff = 0  # frames with a lower id were made before the latest interruption

    async def handle_interruptions(self, _: InterruptionFrame) -> None:
        self._cutoff = obj_id()
        await super().handle_interruptions(_)

    def _next_frame(self) -> AsyncGenerator[Frame, None]:
        # Pipecat's private: what the playing task takes next (bot/pipecat_compat.py).
        return self._fresh(super()._next_frame())

    async def _fresh(self, frames: AsyncGenerator[Frame, None]) -> AsyncGenerator[Frame, None]:
        # Checked as each frame is handed to the playing task, with no await in between.
        async for frame in frames:
            stale = isinstance(frame, OutputAudioRawFrame) and frame.interruptible
            if not (stale and frame.id < self._cutoff):
                yield frame


def drop_stale_audio() -> None:
    """Use the sender above in every output transport made from now on (idempotent)."""
    pipecat_compat.use_media_sender(_MediaSender)


class Playout(FrameProcessor):
    """Just before the output transport: the bot's audio at the pace of playback, a pause, and
    what the caller heard of an interrupted answer (see the module's docstring)."""

    def __init__(
        self, *, lead_secs: float = 0.04, longest_pause_secs: float = 2.0, **kwargs: Any
    ) -> None:
        """`longest_pause_secs`: a pause nobody ends (the caller's turn had already started, so
        no interruption came) ends by itself: the bot never holds the floor in silence."""
        super().__init__(**kwargs)
        self._lead = lead_secs
        self._longest_pause = longest_pause_secs
        self._pause_ends = 0.0
        self._queue: deque[Frame] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._paused = False
        self._until = 0.0  # when the audio let go so far will have played (monotonic)
        self._said: list[str] = []  # the current answer's sentences that went out whole
        self._sentence_secs = 0.0  # audio of the current sentence let go so far
        self.heard: str | None = None  # the last interrupted answer, as far as it was heard

    def keep_heard(self, context: LLMContext, message: Any) -> None:
        """When an answer stops (`message`: the assistant aggregator's): if the caller cut it
        off, the conversation keeps only what they heard of it (`heard_only`)."""
        heard, self.heard = self.heard, None
        if message.interrupted and heard is not None:
            heard_only(context, message.content, heard)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Hold the speech where it is (silence goes out meanwhile)."""
        self._paused = True
        self._pause_ends = time.monotonic() + self._longest_pause

    def resume(self) -> None:
        """Go on from where the speech was held."""
        self._paused = False
        self._arrived.set()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.UPSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._task = self.create_task(self._play(), f"{self}::play")
        elif isinstance(frame, CancelFrame):
            await self._stop()
            self.heard = None  # the call ends: nothing was cut
            await self.push_frame(frame, direction)
        elif isinstance(frame, InterruptionFrame):
            self.heard = self._cut()
            await self.push_frame(frame, direction)
        elif isinstance(frame, SystemFrame):
            await self.push_frame(frame, direction)
        else:  # in order, behind the audio before it
            if isinstance(frame, EndFrame):
                self._paused = False  # what is left plays out, and the call ends after it
            self._queue.append(frame)
            self._arrived.set()

    async def cleanup(self) -> None:
        await self._stop()
        await super().cleanup()

    async def _stop(self) -> None:
        if self._task is not None:
            await self.cancel_task(self._task)
            self._task = None

    def _cut(self) -> str:
        """Drop what has not gone out (but what must play whole), and say what was heard."""
        ahead = max(0.0, self._until - time.monotonic())  # the transport drops this too
        played = max(0.0, self._sentence_secs - ahead)
        rest, text = 0.0, ""
        for frame in self._queue:
            if isinstance(frame, TTSTextFrame):
                text = frame.text
                break
            if isinstance(frame, OutputAudioRawFrame):
                rest += _secs(frame)
        words = text.split()
        total = self._sentence_secs + rest
        share = played / total if total > 0 else 0.0
        heard = " ".join([*self._said, *words[: int(share * len(words))]]).strip()
        self._queue = deque(f for f in self._queue if not f.interruptible)
        self._paused, self._until = False, 0.0
        self._said, self._sentence_secs = [], 0.0
        return heard

    async def _play(self) -> None:
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            frame = self._queue[0]
            if isinstance(frame, OutputAudioRawFrame):
                frame = self._first_piece(frame)
                if await self._wait_for_room(frame):
                    continue  # the queue changed meanwhile (paused, or interrupted)
                self._sentence_secs += _secs(frame)
            elif isinstance(frame, TTSTextFrame):
                self._said.append(frame.text)
                self._sentence_secs = 0.0
            elif isinstance(frame, LLMFullResponseStartFrame):
                self._said, self._sentence_secs, self.heard = [], 0.0, None
            self._queue.popleft()
            await self.push_frame(frame)
            if isinstance(frame, EndFrame):
                return

    def _first_piece(self, frame: OutputAudioRawFrame) -> OutputAudioRawFrame:
        """The first `_PIECE_SECS` of the queue's first frame, the rest left in its place."""
        size = 2 * frame.num_channels * int(frame.sample_rate * _PIECE_SECS)
        if len(frame.audio) <= size:
            return frame
        piece = dataclasses.replace(frame, audio=frame.audio[:size])
        rest = dataclasses.replace(frame, audio=frame.audio[size:])
        piece.interruptible = rest.interruptible = frame.interruptible
        self._queue[0] = rest
        self._queue.appendleft(piece)
        return piece

    async def _wait_for_room(self, frame: OutputAudioRawFrame) -> bool:
        """Wait until `frame` may go out: no more than the lead ahead of playback, and not
        while paused (silence goes out instead). True if it must be looked at again."""
        now = time.monotonic()
        if self._paused and now >= self._pause_ends:
            logger.debug(f"{self}: a pause nobody ended; the speech goes on")
            self._paused = False
        if self._paused:
            await self._sleep_until(self._until - self._lead)
            if not self._paused:  # resumed, or cut off (silence now would restart the bot)
                return True
            silence = TTSAudioRawFrame(
                audio=b"\0\0" * int(frame.sample_rate * _PAUSE_FRAME_SECS),
                sample_rate=frame.sample_rate,
                num_channels=1,
            )
            self._until = max(self._until, time.monotonic()) + _PAUSE_FRAME_SECS
            await self.push_frame(silence)
            return True
        if self._until - now > self._lead:
            await self._sleep_until(self._until - self._lead)
            return True
        self._until = max(self._until, now) + _secs(frame)
        return False

    async def _sleep_until(self, when: float) -> None:
        """Sleep until `when`, waking early when frames arrive or the speech is resumed."""
        delay = when - time.monotonic()
        if delay <= 0:
            return
        self._arrived.clear()
        try:
            async with asyncio.timeout(delay):
                await self._arrived.wait()
        except TimeoutError:
            pass


def _secs(frame: OutputAudioRawFrame) -> float:
    return len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)


def heard_only(context: LLMContext, said: str, heard: str) -> None:
    """After an interruption: the answer the context just kept (`said`, the sentences the
    transport let out; empty if none) becomes what the caller heard, cut off, followed by
    `CUT_NOTE`. An answer of which nothing was heard leaves the conversation."""
    messages = list(context.get_messages())
    last = messages[-1] if messages else None
    if said and isinstance(last, dict) and last.get("role") == "assistant":
        messages.pop()
    if heard:
        messages.append({"role": "assistant", "content": f"{heard.rstrip(' ,;:—–-')} —"})
        messages.append({"role": "system", "content": CUT_NOTE})
    context.set_messages(messages)
