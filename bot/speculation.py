"""An answer to a turn still open is synthesised while the turn is decided, and held as audio.

The turn strategy (bot/turns.py) starts the answer at the caller's first pause, before it knows
the turn is over. Pipecat holds such an answer as text at the LLM until the turn is confirmed, so
speech synthesis starts only then. Here the text goes straight on to TTS (`SpeakingGate`), and
what TTS makes of it (audio, words, its start and stop) is held just before the output transport
(`HeldSpeech`): confirmed, it plays at once; withdrawn because the caller went on, it is dropped
unheard, and the LLM interrupts TTS so that neither works on it any longer (`KitLLMService`).

So waiting longer for the caller to finish costs no voice-to-voice time, as long as the answer's
first audio is ready when the turn is confirmed: the wait after a full stop can be as long as
the gaps people leave between their sentences.
"""

from __future__ import annotations

from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.speculation_gate import GatedFrame, SpeculationGate


class SpeakingGate(SpeculationGate):
    """Pipecat's speculation gate for the LLM, minus the hold: it still knows whether the answer
    being written is for an unconfirmed turn (so that a withdrawal stops the LLM), but lets the
    answer through to TTS. `HeldSpeech` holds it, as audio."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._unconfirmed = False

    @property
    def is_speculating(self) -> bool:
        return self._unconfirmed

    def begin_speculation(self, speculation: bool) -> None:
        super().begin_speculation(False)  # nothing is held here
        self._unconfirmed = speculation

    def process(self, frame: Frame, direction: FrameDirection) -> list[GatedFrame]:
        if isinstance(
            frame, (UserStoppedSpeakingFrame, EagerEndOfTurnCancelFrame, InterruptionFrame)
        ):
            self._unconfirmed = False  # confirmed, withdrawn, or cut off: settled either way
        return super().process(frame, direction)


class HeldSpeech(FrameProcessor):
    """Between TTS and the output transport: holds a speculative answer's speech until its turn
    is confirmed, and drops it if the answer is withdrawn.

    An answer is speculative if it starts while the caller's turn is open. Pipecat's own gate
    decides what to hold, release and drop; it is fed the turn's frames as the LLM's would be.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._gate = SpeculationGate(name=f"{self}::gate")
        # No turn is open before the caller first speaks (the greeting is not held).
        self._gate.process(UserStoppedSpeakingFrame(), FrameDirection.DOWNSTREAM)

    @property
    def holding(self) -> bool:
        """Whether a speculative answer is being held now."""
        return self._gate.is_speculating

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMFullResponseStartFrame):
            # Held only if the caller's turn is still open (the gate knows).
            self._gate.begin_speculation(True)
        for gated, way in self._gate.process(frame, direction):
            await self.push_frame(gated, way)
