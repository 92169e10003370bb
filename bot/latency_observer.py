"""Pipecat's latency observer, kept from losing a turn's start to a withdrawn early answer.

The kit starts an answer on a turn's early transcript and, when the final transcript differs,
Pipecat's LLM service withdraws it with an interruption and answers again (bot/speculation.py).
`UserBotLatencyObserver` clears its whole cycle on any interruption, including when the caller
fell silent: the answer that follows is then reported as measured from the call's start, and
the turn's latency never reaches the log, the page or the benchmark. Common on noisy lines,
where Whisper's two transcripts differ most.
"""

from __future__ import annotations

from pipecat.frames.frames import InterruptionFrame
from pipecat.observers.base_observer import FramePushed
from pipecat.observers.user_bot_latency_observer import UserBotLatencyObserver
from pipecat.processors.frame_processor import FrameDirection

from bot import pipecat_compat


class TurnLatencyObserver(UserBotLatencyObserver):
    """An interruption after the caller fell silent, before the bot spoke, is the pipeline's own
    (a withdrawn answer; the caller's speech resets the cycle before it interrupts): the turn,
    and when the caller fell silent, stay; only the withdrawn answer's moments go."""

    async def on_push_frame(self, data: FramePushed) -> None:
        kept = None
        downstream = data.direction is FrameDirection.DOWNSTREAM
        if downstream and isinstance(data.frame, InterruptionFrame):
            kept = pipecat_compat.callers_side(self)  # None until the caller fell silent
        await super().on_push_frame(data)
        if kept is not None:
            pipecat_compat.restore_callers_side(self, kept)
