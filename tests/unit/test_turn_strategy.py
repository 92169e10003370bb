"""The hybrid turn strategy driven frame by frame with a scripted VAD, Smart Turn and transcripts
(the way Pipecat tests its own stop strategies): what it decides, not how fast."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    EagerTranscriptionFrame,
    InputAudioRawFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.utils.asyncio.task_manager import TaskManager

from bot.playout import CUT_NOTE
from bot.stt import NothingHeardFrame
from bot.turn_policy import TurnPolicy
from bot.turns import HybridTurnStopStrategy, ResumeStartStrategy, Resumption

pytestmark = pytest.mark.unit

FRAME_SECS = 0.02
STOP_SECS = 0.2
START_SECS = 0.2


class ScriptedVAD:
    """What the strategy reads of the VAD, set by the test."""

    class params:
        start_secs = START_SECS
        stop_secs = STOP_SECS

    def __init__(self) -> None:
        self.pause_secs = 0.0
        self.hearing = True
        self.speaking = True
        self.room_db = None  # a quiet room

    @property
    def stirring(self) -> bool:
        return self.hearing


class ScriptedSmartTurn:
    """Smart Turn's verdicts, in turn (the last one repeats); counts how often it was asked."""

    def __init__(self, *verdicts: float) -> None:
        self.verdicts = list(verdicts)
        self.asked = 0

    def probability(self, _audio) -> float:
        self.asked += 1
        return self.verdicts[min(self.asked, len(self.verdicts)) - 1]


class ScriptedSentenceEnd:
    """The language model's readings by transcript (0.5 where none is scripted); a reading of
    None raises, as a failed llama.cpp call would. Keeps what it was asked to read."""

    def __init__(self, **readings: float | None) -> None:
        self.readings = {text.replace("_", " "): p for text, p in readings.items()}
        self.read: list[str] = []

    def probability(self, text: str) -> float:
        self.read.append(text)
        reading = self.readings.get(text, 0.5)
        if reading is None:
            raise RuntimeError("llama.cpp failed")
        return reading


class Events:
    """What the strategy told the turn controller."""

    def __init__(self, strategy: HybridTurnStopStrategy) -> None:
        self.log: list[str] = []
        for name in (
            "on_user_turn_stopped",
            "on_user_turn_inference_triggered",
            "on_user_turn_speculation_cancelled",
        ):
            strategy.add_event_handler(name, self._recorder(name))

    def _recorder(self, name: str):
        async def record(_strategy, *args) -> None:
            self.log.append(name.removeprefix("on_user_turn_"))

        return record

    @property
    def stopped(self) -> bool:
        return "stopped" in self.log


def audio() -> InputAudioRawFrame:
    return InputAudioRawFrame(audio=b"\0\0" * 320, sample_rate=16000, num_channels=1)


class Caller:
    """Plays a turn into the strategy: words, pauses, what Whisper wrote at each."""

    def __init__(
        self, policy: TurnPolicy, *verdicts: float, sentences: ScriptedSentenceEnd | None = None
    ) -> None:
        self.vad = ScriptedVAD()
        self.model = ScriptedSmartTurn(*(verdicts or (0.5,)))
        self.strategy = HybridTurnStopStrategy(
            vad=self.vad,  # pyright: ignore[reportArgumentType]
            model=self.model,  # pyright: ignore[reportArgumentType]
            policy=policy,
            sentences=sentences,  # pyright: ignore[reportArgumentType]
        )
        self.events = Events(self.strategy)

    async def start(self) -> None:
        # What the strategy reads of its processor's set-up: the task manager.
        setup = SimpleNamespace(task_manager=TaskManager(loop=asyncio.get_running_loop()))
        await self.strategy.setup(setup)  # pyright: ignore[reportArgumentType]
        await self.strategy.handle_user_turn_started()

    async def frames(self, secs: float) -> None:
        """`secs` of audio in 20 ms frames, at real pace (the strategy's tasks run meanwhile)."""
        for _ in range(round(secs / FRAME_SECS)):
            if self.vad.pause_secs:
                self.vad.pause_secs += FRAME_SECS
            await self.strategy.process_frame(audio())
            await asyncio.sleep(FRAME_SECS)

    async def say(self, secs: float = 0.4) -> None:
        self.vad.pause_secs, self.vad.hearing, self.vad.speaking = 0.0, True, True
        await self.frames(secs)

    async def pause(self, heard: str, secs: float) -> None:
        """Stop speaking for `secs`: Whisper writes `heard` at the pause's start (nothing, if
        empty), the VAD calls the speech over after its stop."""
        self.vad.hearing = self.vad.speaking = False
        self.vad.pause_secs = FRAME_SECS
        await self.frames(0.04)
        if heard:
            await self.strategy.process_frame(EagerTranscriptionFrame(heard, "caller", "now"))
        await self.frames(STOP_SECS - 0.04)
        await self.strategy.process_frame(VADUserStoppedSpeakingFrame(stop_secs=STOP_SECS))
        if heard:
            await self.strategy.process_frame(TranscriptionFrame(heard, "caller", "now"))
        await self.frames(secs - STOP_SECS)

    async def resume(self) -> None:
        """The caller speaks again after the VAD's stop (its start fires after START_SECS)."""
        self.vad.pause_secs, self.vad.hearing = 0.0, True
        await self.frames(START_SECS)
        self.vad.speaking = True
        await self.strategy.process_frame(VADUserStartedSpeakingFrame(start_secs=START_SECS))

    async def done(self) -> None:
        await self.strategy.cleanup()


POLICY = TurnPolicy(question_wait=0.35, statement_wait=0.5, unfinished_wait=0.9, gap_margin=0.1)


async def test_a_two_sentence_turn_is_not_cut_after_the_first():
    caller = Caller(POLICY, 0.95)  # Smart Turn is sure the first sentence is finished
    await caller.start()
    await caller.say()
    await caller.pause("My cat had kittens last night.", 0.32)
    assert not caller.events.stopped, "the ordinary gap between two sentences"
    assert caller.events.log == ["inference_triggered"], "answered speculatively meanwhile"
    await caller.resume()
    assert caller.events.log[-1] == "speculation_cancelled", "the early answer is withdrawn"
    await caller.say()
    await caller.pause("My cat had kittens last night. How do I look after them?", 0.5)
    assert caller.events.log[-2:] == ["inference_triggered", "stopped"]
    await caller.done()


async def test_a_sound_with_no_words_after_the_turn_does_not_hold_it_open():
    """A breath or a click after the question: the VAD hears a new segment, Whisper writes
    nothing for it, and the turn still ends (not at Pipecat's 5 s timeout)."""
    caller = Caller(POLICY, 0.95)
    await caller.start()
    await caller.say()
    await caller.pause("How do magnets stick to the fridge?", 0.25)
    await caller.resume()
    await caller.say(0.1)
    await caller.pause("", 0.2)
    assert not caller.events.stopped
    await caller.strategy.process_frame(NothingHeardFrame())
    await caller.frames(0.4)
    assert caller.events.stopped, "ended on what was said before the sound"
    await caller.done()


async def test_a_sound_with_no_words_after_a_statement_does_not_hold_it_open():
    """The same after words Smart Turn must weigh (seen in babble: another voice took for the
    caller's, then the turn waited for Pipecat's 5 s timeout): it is scored anew and ends."""
    caller = Caller(POLICY, 0.95)
    await caller.start()
    await caller.say()
    await caller.pause("We put up a bird feeder.", 0.25)
    await caller.resume()
    await caller.say(0.1)
    await caller.pause("", 0.2)
    await caller.strategy.process_frame(NothingHeardFrame())
    await caller.frames(0.5)
    assert caller.events.stopped, "ended on what was said before the sound"
    await caller.done()


async def test_an_unfinished_phrase_that_whisper_punctuated_is_waited_through():
    caller = Caller(POLICY, 0.97)
    await caller.start()
    await caller.say()
    await caller.pause("What I don't get.", 0.7)
    assert not caller.events.stopped, "a pause to think, however sure Smart Turn is"
    await caller.resume()
    await caller.say()
    await caller.pause("What I don't get. Is why the moon follows our car?", 0.5)
    assert caller.events.stopped
    await caller.done()


async def test_a_phrase_the_language_model_reads_as_unfinished_is_waited_through():
    """Whisper's full stop, a phrase no word list knows, Smart Turn sure it is finished: the
    language model's reading holds the turn; the answer started on it is withdrawn unheard."""
    phrase, whole = "Every winter my uncle.", "Every winter my uncle. Goes skiing in the hills."
    sentences = ScriptedSentenceEnd(**{phrase.replace(" ", "_"): 0.004})
    caller = Caller(POLICY, 0.97, sentences=sentences)
    await caller.start()
    await caller.say()
    await caller.pause(phrase, 0.75)
    assert not caller.events.stopped, "a pause mid-sentence, not an end"
    await caller.resume()
    assert caller.events.log == ["inference_triggered", "speculation_cancelled"]
    await caller.say()
    await caller.pause("Goes skiing in the hills.", 0.6)  # the second segment's transcript
    assert caller.events.log[-2:] == ["inference_triggered", "stopped"]
    assert sentences.read == [phrase, whole]
    await caller.done()


async def test_the_same_phrase_without_the_language_model_is_cut_into():
    """What the reading changes: without it the statement's wait ends the turn in the pause."""
    caller = Caller(POLICY, 0.97)
    await caller.start()
    await caller.say()
    await caller.pause("Every winter my uncle.", 0.75)
    assert caller.events.stopped
    await caller.done()


async def test_a_failing_language_model_leaves_the_turn_to_the_other_evidence():
    sentences = ScriptedSentenceEnd(**{"I_like_turtles.": None})
    caller = Caller(POLICY, 0.95, sentences=sentences)
    await caller.start()
    await caller.say()
    await caller.pause("I like turtles.", 0.6)
    assert caller.events.stopped, "ended at the statement's wait, not held open"
    await caller.done()


async def test_a_request_without_a_question_mark_ends_as_soon_as_a_question():
    sentences = ScriptedSentenceEnd()
    caller = Caller(POLICY, 0.05, sentences=sentences)  # Smart Turn would have it go on
    await caller.start()
    await caller.say()
    await caller.pause("Please tell me how rainbows are made", 0.3)
    assert not caller.events.stopped
    await caller.frames(0.1)
    assert caller.events.stopped, "ended at the question's wait"
    assert caller.model.asked == 0, "the words decided: Smart Turn was not needed"
    assert not sentences.read, "nor the language model"
    await caller.done()


async def test_a_statement_ends_once_smart_turn_grows_sure_as_the_silence_grows():
    caller = Caller(POLICY, 0.05, 0.05, 0.08, 0.9)
    await caller.start()
    await caller.say()
    await caller.pause("I like turtles.", 0.45)
    assert not caller.events.stopped
    await caller.frames(0.1)
    assert caller.events.stopped, "the statement's wait once the model agreed, not the unsure one"
    assert caller.model.asked == 4, "not scored again once a surer score could not end it sooner"
    await caller.done()


async def test_a_caller_who_left_a_long_gap_is_waited_for_longer_next_time():
    caller = Caller(POLICY, 0.95)
    await caller.start()
    await caller.say()
    await caller.pause("I have a dog.", 0.46)  # ended at 0.5 s: a gap of 0.46 s
    await caller.resume()
    await caller.say()
    await caller.pause("I have a dog. He is called Rex.", 0.5)
    assert not caller.events.stopped, "their gap plus a margin (0.56 s) has not passed"
    await caller.frames(0.1)
    assert caller.events.stopped
    await caller.done()


async def test_a_turn_ends_even_if_the_input_stops():
    caller = Caller(POLICY)
    await caller.start()
    await caller.say()
    await caller.pause("Why is the sky blue?", STOP_SECS)
    await asyncio.sleep(1.3)  # no frames at all: nothing counts the silence out
    assert caller.events.stopped
    await caller.done()


class Answer:
    """The bot's answer begins; the caller's voice comes in `into` seconds later, for `secs`.
    Says whether the resume strategy started the caller's turn."""

    def __init__(self, resumption: Resumption) -> None:
        self.vad = ScriptedVAD()
        self.resumption = resumption
        self.start = ResumeStartStrategy(
            vad=self.vad,  # pyright: ignore[reportArgumentType]
            policy=POLICY,
            resumption=resumption,
        )
        self.started = False

        @self.start.event_handler("on_user_turn_started")
        async def on_started(_strategy, _params):
            self.started = True

    async def caller_speaks(self, into: float, secs: float) -> bool:
        self.vad.hearing = False
        await self.start.process_frame(BotStartedSpeakingFrame())
        for _ in range(round(into / FRAME_SECS)):
            await self.start.process_frame(audio())
        self.vad.hearing = True
        for _ in range(round(secs / FRAME_SECS)):
            await self.start.process_frame(audio())
        return self.started


async def test_the_caller_going_on_just_after_the_answer_began_restarts_the_turn_at_once():
    context = LLMContext(
        [
            {"role": "system", "content": "You are a teacher."},
            {"role": "user", "content": "My cat had kittens."},
            {"role": "assistant", "content": "Oh, how"},
        ]
    )
    answer = Answer(Resumption(context))
    assert not await answer.caller_speaks(into=0.2, secs=0.02), "a window of voice may be noise"
    assert await answer.caller_speaks(into=0.0, secs=0.06)
    assert answer.resumption.pending
    answer.resumption.settle()
    assert [m["role"] for m in context.get_messages()] == ["system", "user"], (
        "the answer the caller talked over is forgotten"
    )


async def test_speaking_later_in_the_answer_is_left_to_pipecats_start_strategies():
    assert not await Answer(Resumption()).caller_speaks(into=0.6, secs=0.2)


def test_a_resumed_turn_drops_the_cut_answer_and_its_note():
    """The caller went on just after an answer they had cut into began: neither the few words
    they heard nor the note that they cut in stay in the conversation."""
    context = LLMContext(
        [
            {"role": "user", "content": "My cat had kittens."},
            {"role": "assistant", "content": "Oh, how —"},
            {"role": "system", "content": CUT_NOTE},
        ]
    )
    resumption = Resumption(context)
    resumption.start()
    resumption.settle()
    assert context.get_messages() == [{"role": "user", "content": "My cat had kittens."}]
