"""The hybrid turn policy: what the transcript's end says, weighed with Smart Turn's
probability; and the seed's tuning next to the kit's."""

import pytest

from bot.config import Settings
from bot.tuning import tuning
from bot.turns import Cue, TurnPolicy, cue


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Why is the sky blue?", Cue.ASKED),
        ("Tell me a joke!", Cue.ASKED),
        ("Tell me about frogs.", Cue.SAID),
        ("I was wondering,", Cue.OPENING),
        ("So my question is...", Cue.OPENING),
        ("Well, it is blue and...", Cue.TRAILING),
        ("Well —", Cue.TRAILING),
        ("", Cue.TRAILING),
        ("What is the biggest animal in the", Cue.DANGLING),
        ("Can you tell me about um.", Cue.DANGLING),
        ("how far away is the sun", Cue.BARE),
        ('"Is it raining?"', Cue.ASKED),
        ("I was wondering.", Cue.OPENING),
        ("So, my question is.", Cue.OPENING),
        ("Can you tell me?", Cue.OPENING),
        ("Can you tell me why the sky is blue?", Cue.ASKED),
        ("I wonder why cats purr.", Cue.SAID),
    ],
)
def test_the_end_of_a_transcript_is_classified(text, expected):
    assert cue(text) is expected


def test_a_question_ends_the_turn_whatever_smart_turn_thinks():
    assert TurnPolicy().wait("Why is the sky blue?", 0.01) == 0


def test_only_a_question_or_an_opening_is_decided_without_smart_turn():
    policy = TurnPolicy(open_wait=1.5)
    assert not policy.needs_model("Why is the sky blue?")
    assert policy.wait("Why is the sky blue?", None) == 0
    assert not policy.needs_model("I was wondering,")
    assert policy.wait("I was wondering,", None) == 1.5
    for text in ("Tell me about frogs.", "how far is the sun", "It is blue and,", "The sky is"):
        assert policy.needs_model(text)
        with pytest.raises(ValueError, match="probability"):
            policy.wait(text, None)


def test_a_sentence_left_open_waits_the_longest_unless_the_model_is_confident():
    policy = TurnPolicy(open_wait=1.5, unfinished_wait=0.8)
    assert policy.wait("The sky is blue and,", 0.5) == 1.5
    assert not policy.may_speculate("The sky is blue and,", 0.5)
    assert policy.wait("What is seven times it...", 0.9) == 0.8


@pytest.mark.parametrize(
    "text", ["When I went to the park...", "My favourite animal is the", "How come when it"]
)
def test_words_that_stop_mid_sentence_are_waited_on_however_sure_the_model_is(text):
    policy = TurnPolicy(open_wait=1.5, unsure_wait=1.0, unfinished_wait=0.8)
    assert policy.wait(text, 0.99) == 0.8
    assert policy.wait(text, 0.05) > 0.8
    assert policy.may_speculate(text, 0.99), "a likely end is worth answering ahead of"


def test_a_full_stop_leaves_it_to_the_model():
    policy = TurnPolicy(open_wait=1.5, unsure_wait=1.0)
    assert policy.wait("Tell me about frogs.", 0.35) == 0
    assert policy.wait("Tell me about frogs.", 0.2) == 1.0
    assert policy.may_speculate("Tell me about frogs.", 0.2), (
        "a short wait is worth answering ahead of"
    )


def test_an_opening_waits_for_the_question_however_sure_the_model_is():
    policy = TurnPolicy(open_wait=1.5)
    assert policy.wait("I was wondering.", 0.99) == 1.5
    assert not policy.may_speculate("Can you tell me?", 0.99)


def test_a_dangling_word_needs_a_confident_model():
    policy = TurnPolicy(open_wait=1.5, unfinished_wait=0.8)
    assert policy.wait("I want to know about the", 0.6) == 1.5
    assert policy.wait("I want to know about the", 0.9) == 0.8


def test_the_seed_profile_is_the_seeds_configuration_whatever_the_settings():
    settings = Settings(_env_file=None, vad_stop_secs=0.15, turn_detection="silence")
    seed = tuning(settings, "seed")
    assert (seed.vad_stop_secs, seed.turn_detection, seed.turn_stop_secs) == (
        0.5,
        "smart-turn",
        1.5,
    )
    assert not seed.trim_window and seed.stock_tts
    kit = tuning(settings)
    assert (kit.vad_stop_secs, kit.turn_detection, kit.stock_tts) == (0.15, "silence", False)
