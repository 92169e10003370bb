"""The turn study's replay of `TurnPolicy` over what a clip's pauses held, and its verdicts."""

import pytest

from bot.turn_policy import TurnPolicy
from scripts.turn_study import STEP_SECS, Clip, Pause, replay, report

POLICY = TurnPolicy(question_wait=0.35, statement_wait=0.5, unsure_wait=0.8, gap_margin=0.1)


def scores(value: float, secs: float = 1.6) -> list[float]:
    return [value] * round(secs / STEP_SECS)


def clip(name: str, speech_end: float, *pauses: Pause, part: str = "tune") -> Clip:
    return Clip(name, part, "two-sentence", "clean", None, "", speech_end, list(pauses))


def test_a_gap_shorter_than_the_wait_is_waited_through_and_the_end_is_timed():
    two = clip(
        "kittens",
        3.0,
        Pause(1.2, 1.55, True, heard="My cat had kittens.", scores=scores(0.95, 0.35)),
        Pause(3.0, None, True, heard="My cat had kittens. How do I look after them?"),
    )
    outcome = replay(POLICY, two)
    assert not outcome.cut_in
    # The question's wait, lengthened by this caller's 0.35 s gap (plus the margin).
    assert outcome.endpointing == pytest.approx(0.45, abs=0.021)


def test_a_gap_longer_than_the_wait_is_a_cut_in():
    two = clip(
        "kittens",
        3.0,
        Pause(1.2, 1.9, True, heard="My cat had kittens.", scores=scores(0.95, 0.7)),
        Pause(3.0, None, True, heard="My cat had kittens. How do I look after them?"),
    )
    assert replay(POLICY, two).cut_in


def test_the_callers_earlier_gap_lengthens_the_next_wait():
    three = clip(
        "pets",
        5.0,
        Pause(1.0, 1.45, True, heard="I have a dog.", scores=scores(0.95, 0.45)),
        Pause(2.5, 3.02, True, heard="I have a dog. He is called Rex.", scores=scores(0.95, 0.52)),
        Pause(
            5.0,
            None,
            True,
            heard="I have a dog. He is called Rex. He likes bones.",
            scores=scores(0.95),
        ),
    )
    outcome = replay(POLICY, three)
    assert not outcome.cut_in, "after a 0.45 s gap the caller is waited for 0.55 s"
    # And after their 0.52 s gap, for the longest wait their gaps may ask (0.6 s; heard out to
    # within a 20 ms frame).
    assert outcome.endpointing == pytest.approx(0.6, abs=0.021)


def test_stalls_and_unanswered_turns_are_reported_per_part():
    unsure = clip(
        "turtles", 1.0, Pause(1.0, None, True, heard="I like turtles.", scores=scores(0.05))
    )
    babble = clip("babble", 1.0, part="held-out")  # the VAD never heard the words end
    result = report(POLICY, [unsure, babble], "tune")
    assert result["stalls"] == ["turtles"] and result["cut_ins"] == []
    held_out = report(POLICY, [unsure, babble], "held-out")
    assert held_out["unanswered"] == ["babble"] and held_out["turns"] == 1
