"""The caller's voice while the bot speaks: a backchannel leaves it talking, an interruption stops
it at once.

Pipecat's start strategies take any voice the VAD hears for its start (0.2 s) for the caller's
turn: an "mm-hm" or "okay" stops the answer, and the bot then answers the "okay". Here, while the
bot speaks (`OverlapStartStrategy`):
- `overlap_voice_secs` (40 ms) of voice, or of what may be its onset (a jump in level, Silero
  half sure), pause its speech (`Playout`, bot/playout.py), whatever comes next;
- what they said decides, from Whisper's transcript at their first pause (the turn strategy asks
  for it, bot/turns.py; `TurnPolicy.backchannel`): words that only show they are listening, or
  a short overlap whose words neither listen nor take the floor (Whisper writes hums as words),
  resume the answer from the sample it stopped at, and stay out of the conversation; anything
  else is an interruption: their turn starts, Pipecat stops the answer, and the next answer is
  to what they said (the conversation keeps only what was heard: bot/playout.py);
- speech that goes on for `backchannel_secs` is an interruption without waiting for words; a
  sound the VAD has not taken for speech `false_alarm_secs` after the pause (a cough, a click,
  a fan) resumes the answer, and until the next answer only speech the VAD is sure of pauses it.

When the bot is silent, the strategies after this one (Pipecat's) start the caller's turn.
All of it runs locally on the CPU: the VAD, the level and the call's own Whisper.
"""

from __future__ import annotations

from typing import Protocol

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EagerTranscriptionFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    UserBackchannelFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_start import BaseUserTurnStartStrategy

from bot.playout import Playout
from bot.stt import NothingHeardFrame
from bot.turn_policy import TurnPolicy, backchannel_words


class Voice(Protocol):
    """What the strategy reads of the call's VAD (`PauseAwareVAD`, bot/turns.py), every frame."""

    @property
    def speaking(self) -> bool: ...
    @property
    def hearing(self) -> bool: ...
    @property
    def stirring(self) -> bool: ...


class OverlapStartStrategy(BaseUserTurnStartStrategy):
    """While the bot speaks: pauses it at the caller's voice, then resumes it for a backchannel
    or a false alarm, or starts the caller's turn (see the module's docstring)."""

    def __init__(self, *, vad: Voice, policy: TurnPolicy, playout: Playout):
        super().__init__()
        self._vad = vad
        self._policy = policy
        self._playout = playout
        self._bot_speaking = False
        self._voice = 0.0  # seconds of voice just now
        # After a false alarm (a noisy room), until the bot's next answer, only speech the VAD
        # is sure of pauses it: noise would otherwise pause it again and again.
        self._wary = False
        # While an overlap is judged: time since the pause, its voice and the quiet since, in
        # seconds of audio.
        self._judging = False
        self._since = self._voiced = self._quiet = 0.0
        self._segment = False  # the VAD took the overlap for speech: Whisper will write it
        self._backchannel = ""  # a backchannel whose final transcript is still to come

    async def handle_user_turn_started(self) -> None:
        # The interruption that follows drops the paused answer (and ends the pause).
        self._judging = False
        self._backchannel = ""

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking, self._wary = True, False
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, InputAudioRawFrame):
            return await self._listen(frame.num_frames / frame.sample_rate)
        elif isinstance(frame, VADUserStartedSpeakingFrame) and (
            self._judging or self._bot_speaking
        ):
            if not self._judging:
                self._begin()
            self._segment = True
            return ProcessFrameResult.STOP  # not a turn yet: the words decide
        elif isinstance(frame, (TranscriptionFrame, EagerTranscriptionFrame)):
            return await self._heard(frame)
        elif isinstance(frame, InterimTranscriptionFrame) and self._judging:
            return ProcessFrameResult.STOP
        elif isinstance(frame, NothingHeardFrame) and self._judging:
            self._go_on("no words")
        return ProcessFrameResult.CONTINUE

    async def _listen(self, secs: float) -> ProcessFrameResult:
        hearing = self._vad.hearing
        # The onset pauses the bot: voice, or what may be its start (a jump in level, Silero
        # half sure), which the VAD takes 0.1-0.2 s more to be sure of.
        onset = self._vad.speaking if self._wary else self._vad.stirring
        self._voice = self._voice + secs if onset else 0.0
        if not self._judging:
            if self._bot_speaking and self._voice >= self._policy.overlap_voice_secs:
                self._begin()
            return ProcessFrameResult.CONTINUE
        self._since += secs
        self._segment = self._segment or self._vad.speaking
        if hearing:
            self._voiced += secs
            self._quiet = 0.0
        else:
            self._quiet += secs
        if self._segment and self._voiced >= self._policy.backchannel_secs:
            return await self._interrupt("voice going on")
        if not self._segment and self._since >= self._policy.false_alarm_secs:
            self._wary = True
            self._go_on("a false alarm (no speech)")
        elif self._quiet >= self._policy.overlap_wait_secs:
            self._go_on("no transcript came")
        return ProcessFrameResult.CONTINUE

    def _begin(self) -> None:
        self._judging, self._segment = True, self._vad.speaking
        self._since, self._voiced, self._quiet = 0.0, self._voice, 0.0
        self._playout.pause()
        logger.debug(f"{self}: the caller's voice over the bot; speech paused")

    async def _heard(
        self, frame: TranscriptionFrame | EagerTranscriptionFrame
    ) -> ProcessFrameResult:
        final = isinstance(frame, TranscriptionFrame)
        text = frame.text.strip()
        if self._backchannel and final:
            self._backchannel = ""
            if backchannel_words(text) is not False:
                # The backchannel's own transcript, at the VAD's stop: not the caller's turn.
                await self.trigger_reset_aggregation()
                return ProcessFrameResult.STOP
        if not self._judging:
            return ProcessFrameResult.CONTINUE
        if not self._policy.backchannel(text, self._voiced):
            return await self._interrupt("words")
        self._go_on("a backchannel")
        if text:
            await self.push_frame(UserBackchannelFrame(text, frame.user_id, frame.timestamp))
        if final:
            await self.trigger_reset_aggregation()
        else:
            self._backchannel = text
        return ProcessFrameResult.STOP

    def _go_on(self, why: str) -> None:
        logger.debug(f"{self}: {why}; the answer goes on")
        self._judging = False
        self._playout.resume()

    async def _interrupt(self, why: str) -> ProcessFrameResult:
        logger.debug(f"{self}: an interruption ({why})")
        self._judging = False
        await self.trigger_user_turn_started()
        return ProcessFrameResult.STOP
