"""The caller's voice over the bot, frame by frame with a scripted VAD and transcripts (as Pipecat
tests its own strategies): a backchannel or a false alarm resumes the paused answer, words or
voice that goes on interrupt it. What it decides, not how fast."""

from __future__ import annotations

from typing import Any

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    EagerTranscriptionFrame,
    InputAudioRawFrame,
    TranscriptionFrame,
    UserBackchannelFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult

from bot.call_config import call_config
from bot.config import Settings
from bot.overlap import OverlapStartStrategy
from bot.playout import Playout
from bot.stt import NothingHeardFrame
from bot.turn_policy import TurnPolicy, backchannel_words
from bot.turns import call_vad, turn_policy, turn_strategies

pytestmark = pytest.mark.unit

FRAME_SECS = 0.02


class ScriptedVAD:
    hearing = False
    speaking = False
    noise = False  # a sound Silero is half sure of, never speech

    @property
    def stirring(self) -> bool:
        return self.hearing or self.noise


def audio() -> InputAudioRawFrame:
    return InputAudioRawFrame(audio=b"\0\0" * 320, sample_rate=16000, num_channels=1)


class Overlap:
    """The strategy, the call's playout, and what the strategy told the aggregator."""

    def __init__(self, **policy: Any) -> None:
        self.vad = ScriptedVAD()
        self.playout = Playout()
        self.strategy = OverlapStartStrategy(
            vad=self.vad,  # pyright: ignore[reportArgumentType]
            policy=TurnPolicy(**policy),
            playout=self.playout,
        )
        self.log: list[str] = []
        self.pushed: list = []

        @self.strategy.event_handler("on_user_turn_started")
        async def started(_strategy, _params):
            self.log.append("turn started")

        @self.strategy.event_handler("on_reset_aggregation")
        async def reset(_strategy):
            self.log.append("aggregation reset")

        @self.strategy.event_handler("on_push_frame")
        async def pushed(_strategy, frame, _direction):
            self.pushed.append(frame)

    async def frames(self, secs: float, *, voice: bool) -> list[ProcessFrameResult]:
        self.vad.hearing = voice
        return [await self.strategy.process_frame(audio()) for _ in range(round(secs / FRAME_SECS))]

    async def speech(self, secs: float) -> None:
        """Voice long enough for the VAD's start (0.2 s), which it then reports."""
        await self.frames(0.2, voice=True)
        self.vad.speaking = True
        result = await self.strategy.process_frame(VADUserStartedSpeakingFrame(start_secs=0.2))
        assert result is ProcessFrameResult.STOP, "not a turn yet: the words decide"
        await self.frames(secs - 0.2, voice=True)
        self.vad.speaking = False

    async def pause(self, heard: str | None) -> ProcessFrameResult:
        """The caller pauses; Whisper writes `heard` at once (None: nothing yet)."""
        await self.frames(0.04, voice=False)
        if heard is None:
            return ProcessFrameResult.CONTINUE
        return await self.strategy.process_frame(EagerTranscriptionFrame(heard, "caller", "now"))

    async def final(self, heard: str) -> ProcessFrameResult:
        """The VAD's stop, then the segment's transcript."""
        await self.strategy.process_frame(VADUserStoppedSpeakingFrame(stop_secs=0.2))
        return await self.strategy.process_frame(TranscriptionFrame(heard, "caller", "now"))


async def test_a_backchannel_pauses_the_bot_then_lets_it_go_on():
    overlap = Overlap()
    await overlap.strategy.process_frame(BotStartedSpeakingFrame())
    await overlap.frames(0.06, voice=True)
    assert overlap.playout.paused, "paused at the caller's first voice"
    await overlap.speech(0.3)
    assert await overlap.pause("Mm-hm.") is ProcessFrameResult.STOP
    assert not overlap.playout.paused, "the answer goes on"
    assert await overlap.final("Mm-hm.") is ProcessFrameResult.STOP, "not a turn"
    assert overlap.log == ["aggregation reset"], "kept out of the conversation, no turn"
    assert [f.text for f in overlap.pushed if isinstance(f, UserBackchannelFrame)] == ["Mm-hm."]


@pytest.mark.parametrize("said", ["Okay.", "Uh-huh.", "Right.", "I see.", "Yeah, okay."])
async def test_each_kind_of_acknowledgement_leaves_the_bot_talking(said):
    overlap = Overlap()
    await overlap.strategy.process_frame(BotStartedSpeakingFrame())
    await overlap.speech(0.4)
    await overlap.pause(said)
    await overlap.final(said)
    assert "turn started" not in overlap.log and not overlap.playout.paused


@pytest.mark.parametrize("said", ["Wait, stop.", "No, I meant sharks.", "Can I ask something?"])
async def test_words_that_are_not_a_backchannel_interrupt(said):
    overlap = Overlap()
    await overlap.strategy.process_frame(BotStartedSpeakingFrame())
    await overlap.speech(0.5)
    assert overlap.playout.paused
    assert await overlap.pause(said) is ProcessFrameResult.STOP
    assert overlap.log == ["turn started"], "the caller's turn: Pipecat stops the answer"


async def test_voice_that_goes_on_interrupts_without_waiting_for_words():
    overlap = Overlap(backchannel_secs=1.0)
    await overlap.strategy.process_frame(BotStartedSpeakingFrame())
    await overlap.speech(0.9)
    assert overlap.log == []
    await overlap.frames(0.12, voice=True)
    assert overlap.log == ["turn started"]


async def test_a_cough_the_vad_never_took_for_speech_resumes_the_answer():
    overlap = Overlap(false_alarm_secs=0.5)
    await overlap.strategy.process_frame(BotStartedSpeakingFrame())
    await overlap.frames(0.1, voice=True)
    assert overlap.playout.paused
    await overlap.frames(0.3, voice=False)
    assert overlap.playout.paused, "not yet: the VAD may still take it for speech"
    await overlap.frames(0.2, voice=False)
    assert not overlap.playout.paused and overlap.log == []


async def test_after_a_false_alarm_noise_no_longer_pauses_the_answer_but_speech_does():
    overlap = Overlap(false_alarm_secs=0.5)
    await overlap.strategy.process_frame(BotStartedSpeakingFrame())
    overlap.vad.noise = True  # a fan, say: Silero half sure now and then
    await overlap.frames(0.6, voice=False)
    assert not overlap.playout.paused, "paused once, then the answer went on"
    await overlap.frames(1.0, voice=False)
    assert not overlap.playout.paused and overlap.log == [], "and not again"
    await overlap.speech(0.3)
    assert overlap.playout.paused, "speech the VAD is sure of still pauses it"
    await overlap.pause("Wait.")
    assert overlap.log == ["turn started"]


async def test_a_hum_whisper_writes_nothing_for_resumes_the_answer():
    overlap = Overlap()
    await overlap.strategy.process_frame(BotStartedSpeakingFrame())
    await overlap.speech(0.4)
    await overlap.pause(None)
    await overlap.strategy.process_frame(VADUserStoppedSpeakingFrame(stop_secs=0.2))
    await overlap.strategy.process_frame(NothingHeardFrame())
    assert not overlap.playout.paused and overlap.log == []


async def test_a_backchannel_the_caller_goes_on_from_becomes_an_interruption():
    overlap = Overlap()
    await overlap.strategy.process_frame(BotStartedSpeakingFrame())
    await overlap.speech(0.3)
    await overlap.pause("Okay.")
    assert not overlap.playout.paused
    await overlap.speech(0.5)  # "...but why is it hot?"
    assert overlap.playout.paused, "paused again"
    await overlap.pause("Okay, but why is it hot?")
    assert overlap.log == ["turn started"]


async def test_while_the_bot_is_silent_the_caller_is_left_to_pipecat():
    overlap = Overlap()
    results = await overlap.frames(0.3, voice=True)
    assert not overlap.playout.paused and set(results) == {ProcessFrameResult.CONTINUE}
    vad = await overlap.strategy.process_frame(VADUserStartedSpeakingFrame(start_secs=0.2))
    words = await overlap.strategy.process_frame(TranscriptionFrame("Okay.", "caller", "now"))
    assert vad is words is ProcessFrameResult.CONTINUE, "Pipecat's strategies start the turn"


@pytest.mark.parametrize(
    ("text", "listening"),
    [
        ("Mm-hm.", True),
        ("uh-huh", True),
        ("Mmmmmhm", True),
        ("Okay, I see.", True),
        ("", True),
        ("Yeah.", True),
        ("Stop.", False),
        ("Wait.", False),
        ("No.", False),
        ("Okay, but why?", False),
        ("Right, so what happened next?", False),
        ("And then they come.", None),  # how Whisper wrote one "Mm-hm."
        ("Tell me about sharks.", False),
    ],
)
def test_backchannel_words(text, listening):
    assert backchannel_words(text) is listening


def test_words_that_say_nothing_are_a_backchannel_only_if_short():
    policy = TurnPolicy(short_overlap_secs=0.7)
    assert policy.backchannel("And then they come.", 0.5)
    assert not policy.backchannel("It is very big.", 1.2)
    assert not policy.backchannel("Wait.", 0.3), "short, but it takes the floor"


async def test_a_hum_whisper_writes_as_words_leaves_the_bot_talking():
    overlap = Overlap(short_overlap_secs=0.7)
    await overlap.strategy.process_frame(BotStartedSpeakingFrame())
    await overlap.speech(0.5)
    await overlap.pause("And then they come.")
    await overlap.final("And then they come.")
    assert "turn started" not in overlap.log and not overlap.playout.paused


@pytest.mark.parametrize(("secs", "judged"), [(1.0, True), (0.0, False)])
def test_turn_backchannel_secs_0_leaves_every_voice_to_pipecat(secs, judged):
    settings = Settings(_env_file=None, turn_backchannel_secs=secs)
    vad = call_vad(settings, 0.2)
    strategies = turn_strategies(
        call_config(settings), vad, turn_policy(settings), playout=Playout()
    )
    kinds = [type(s) for s in strategies.start or []]
    assert (OverlapStartStrategy in kinds) is judged
