"""Playout that stops where the caller cut in.

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

from collections.abc import AsyncGenerator

from pipecat.frames.frames import Frame, InterruptionFrame, OutputAudioRawFrame
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.utils.utils import obj_id


class _MediaSender(BaseOutputTransport.MediaSender):
    """The output transport's sender, minus audio left over from before an interruption."""

    _cutoff = 0  # frames with a lower id were made before the latest interruption

    async def handle_interruptions(self, _: InterruptionFrame) -> None:
        self._cutoff = obj_id()
        await super().handle_interruptions(_)

    def _next_frame(self) -> AsyncGenerator[Frame, None]:
        return self._fresh(super()._next_frame())

    async def _fresh(self, frames: AsyncGenerator[Frame, None]) -> AsyncGenerator[Frame, None]:
        # Checked as each frame is handed to the playing task, with no await in between.
        async for frame in frames:
            stale = isinstance(frame, OutputAudioRawFrame) and frame.interruptible
            if not (stale and frame.id < self._cutoff):
                yield frame


def drop_stale_audio() -> None:
    """Use the sender above in every output transport made from now on (idempotent)."""
    BaseOutputTransport.MediaSender = _MediaSender
