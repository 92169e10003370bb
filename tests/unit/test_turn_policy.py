"""The turn policy: what the transcript's end says, weighed with Smart Turn's probability and the
caller's own gaps; and the seed's configuration next to the kit's."""

import pytest

from bot.call_config import call_config
from bot.config import Settings
from bot.turn_policy import Cue, TurnPolicy, cue
from bot.turns import turn_policy

POLICY = TurnPolicy(
    question_wait=0.35,
    statement_wait=0.5,
    unsure_wait=0.8,
    unfinished_wait=0.9,
    open_wait=1.5,
    gap_margin=0.1,
    noisy_room_db=-40.0,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Why is the sky blue?", Cue.ASKED),
        ("Tell me a joke!", Cue.ASKED),
        ("Tell me about frogs.", Cue.REQUEST),
        ("Please tell me how rainbows are made", Cue.REQUEST),
        ("Explain why the sea is salty.", Cue.REQUEST),
        ("who invented the light world", Cue.REQUEST),  # a question misheard, left unmarked
        ("Why is the sky blue.", Cue.REQUEST),
        ("How come the sky is blue", Cue.REQUEST),
        ("I like turtles.", Cue.SAID),
        ("My cat had kittens last night.", Cue.SAID),
        ("When I went to the park I saw a big brown duck.", Cue.SAID),
        ("What a lovely day.", Cue.SAID),
        ("I wonder why cats purr.", Cue.SAID),
        ("I was wondering,", Cue.OPENING),
        ("So my question is...", Cue.OPENING),
        ("I was wondering.", Cue.OPENING),
        ("Can you tell me?", Cue.OPENING),
        ("Can you tell me why the sky is blue?", Cue.ASKED),
        ("Well, it is blue and...", Cue.TRAILING),
        ("It is blue and —", Cue.TRAILING),
        ("Um, well.", Cue.OPENING),
        ("Excuse me.", Cue.OPENING),
        ("I have a question for you.", Cue.OPENING),
        ("Yes.", Cue.SAID),  # an answer to the bot's own question
        ("Last summer on holiday.", Cue.CLAUSE),  # a scene set for what comes next
        ("Yesterday my cousin showed me", Cue.CLAUSE),
        ("", Cue.TRAILING),
        ("What is the biggest animal in the", Cue.DANGLING),
        ("What I don't get is.", Cue.DANGLING),
        ("Can you tell me about um.", Cue.DANGLING),
        ("What I don't get.", Cue.CLAUSE),  # an unfinished phrase Whisper punctuated
        ("When I went to the park.", Cue.CLAUSE),
        ("If a cat and a dog had a race", Cue.CLAUSE),
        ("How come when it", Cue.CLAUSE),
        ("And then my friend asked.", Cue.CLAUSE),
        ("Yesterday my teacher said that", Cue.CLAUSE),
        ("I have two cats. When they sleep.", Cue.CLAUSE),  # the last sentence counts
        ("how far away is the sun", Cue.REQUEST),
        ('"Is it raining?"', Cue.ASKED),
    ],
)
def test_the_end_of_a_transcript_is_classified(text, expected):
    assert cue(text) is expected


def test_a_question_or_request_ends_sooner_than_a_statement_whatever_smart_turn_thinks():
    assert POLICY.end_after("Why is the sky blue?", None) == 0.35
    assert POLICY.end_after("Please tell me how rainbows are made", None) == 0.35
    assert POLICY.end_after("I like turtles.", 0.95) == 0.5
    assert POLICY.end_after("I like turtles.", 0.05) == 0.8, "the model objects: wait longer"


def test_only_a_question_a_request_or_an_opening_is_decided_without_smart_turn():
    for text in ("Why is the sky blue?", "Tell me a story about a dragon", "I was wondering,"):
        assert not POLICY.needs_model(text)
    assert POLICY.end_after("I was wondering,", None) == 1.5
    for text in ("I like turtles.", "how far is the", "It is blue and,", "When I went home."):
        assert POLICY.needs_model(text)
        with pytest.raises(ValueError, match="probability"):
            POLICY.end_after(text, None)


@pytest.mark.parametrize(
    "text", ["When I went to the park...", "My favourite animal is the", "What I don't get."]
)
def test_words_that_stop_mid_sentence_are_waited_on_however_sure_the_model_is(text):
    assert POLICY.end_after(text, 0.99) == 0.9, "longer than a pause to think (0.75 s)"
    assert POLICY.end_after(text, 0.3) == 1.5
    assert POLICY.may_speculate(text, 0.99), "a likely end is worth answering ahead of"
    assert not POLICY.may_speculate(text, 0.3)


def test_an_opening_waits_for_the_question_however_sure_the_model_is():
    assert POLICY.end_after("I was wondering.", 0.99) == 1.5
    assert not POLICY.may_speculate("Can you tell me?", 0.99)


def test_a_finished_sentence_is_answered_ahead_however_long_its_wait_is_set():
    patient = TurnPolicy(statement_wait=1.6, question_wait=1.6)
    assert patient.end_after("I have a pet rabbit.", 0.6) > patient.open_wait
    assert patient.may_speculate("I have a pet rabbit.", 0.6)
    assert patient.may_speculate("What should I feed her?", None)


def test_a_caller_who_leaves_long_gaps_between_sentences_is_waited_for_longer():
    """Their typical gap raises the wait after a finished-sounding sentence, up to a limit; a
    pause to think does not count; words that stop mid-sentence wait as long as they did."""
    assert POLICY.end_after("I like turtles.", 0.95, [0.3, 0.45, 0.4]) == pytest.approx(0.5)
    assert POLICY.end_after("Why is the sky blue?", None, [0.45]) == pytest.approx(0.55)
    assert POLICY.end_after("Why is the sky blue?", None, [0.58]) == POLICY.gap_wait_limit
    assert POLICY.end_after("Why is the sky blue?", None, [0.9, 2.0]) == 0.35, "pauses to think"
    assert POLICY.end_after("Why is the sky blue?", None, [0.1]) == 0.35, "never shorter"
    assert POLICY.end_after("When I went to the park...", 0.99, [0.45]) == 0.9


def test_the_policy_is_built_from_the_settings():
    settings = Settings(
        _env_file=None,
        turn_question_secs=0.3,
        turn_statement_secs=0.6,
        turn_stop_secs=2.0,
        turn_resume_secs=0.4,
    )
    policy = turn_policy(settings)
    assert (policy.question_wait, policy.statement_wait) == (0.3, 0.6)
    assert (policy.open_wait, policy.resume_secs) == (2.0, 0.4)


def test_the_seed_profile_is_the_seeds_configuration_whatever_the_settings():
    settings = Settings(_env_file=None, vad_stop_secs=0.15, turn_detection="silence")
    seed = call_config(settings, "seed")
    assert (seed.vad_stop_secs, seed.turn_detection, seed.turn_stop_secs) == (
        0.5,
        "smart-turn",
        1.5,
    )
    assert not seed.trim_window and seed.stock_tts
    kit = call_config(settings)
    assert (kit.vad_stop_secs, kit.turn_detection, kit.stock_tts) == (0.15, "silence", False)


def test_in_a_noisy_room_smart_turns_objections_do_not_count():
    """Other voices go on after the caller's last word, and Smart Turn hears a turn still going
    (p 0.01-0.05 on finished sentences in babble): the words decide there."""
    assert POLICY.end_after("I like turtles.", 0.02, room_db=-35.0) == 0.5
    assert POLICY.end_after("I like turtles.", 0.02, room_db=-80.0) == 0.8, "a quiet room"
    assert POLICY.end_after("When I went to the park.", 0.02, room_db=-35.0) == 0.9
    assert POLICY.end_after("I was wondering,", None, room_db=-35.0) == 1.5


def test_a_statement_the_language_model_reads_as_unfinished_is_waited_through():
    """Whisper wrote a full stop and the word lists know nothing of the phrase; the language
    model's reading (P a sentence ends there) decides."""
    text = "Every winter my uncle."
    assert cue(text) is Cue.SAID and POLICY.reads(text)
    assert POLICY.kind(text, 0.004) is Cue.UNFINISHED
    assert POLICY.end_after(text, 0.97, sentence_end=0.004) == 0.9, "however sure Smart Turn is"
    assert POLICY.end_after(text, 0.3, sentence_end=0.004) == 1.5
    assert not POLICY.may_speculate(text, 0.3, sentence_end=0.004)
    assert POLICY.end_after(text, 0.97, sentence_end=0.4) == 0.5, "read as finished"
    assert POLICY.end_after(text, 0.97) == 0.5, "not read (no model): as before"


def test_the_language_model_does_not_overrule_a_question_a_request_or_an_opening():
    for text in ("Why is the sky blue?", "Tell me a story about a dragon", "I was wondering."):
        assert not POLICY.reads(text)
        assert POLICY.kind(text, 0.001) is cue(text)
    assert POLICY.end_after("Why is the sky blue?", None, sentence_end=0.001) == 0.35


def test_smart_turn_is_asked_again_only_while_a_surer_score_could_end_the_turn_sooner():
    assert POLICY.may_shorten("I like turtles.", 0.05), "unsure: 0.8 s, sure: 0.5 s"
    assert not POLICY.may_shorten("I like turtles.", 0.95), "already the statement's wait"
    assert POLICY.may_shorten("When I went to the park...", 0.3), "1.5 s, or 0.9 s once sure"
    assert not POLICY.may_shorten("Why is the sky blue?", None), "the words decided"


def test_a_statement_the_language_model_reads_as_finished_ends_whatever_smart_turn_objects():
    assert POLICY.end_after("My dog likes bones.", 0.05) == 0.8, "Smart Turn objects"
    assert POLICY.end_after("My dog likes bones.", 0.05, sentence_end=0.6) == 0.5
    assert POLICY.end_after("My dog likes bones.", 0.05, sentence_end=0.3) == 0.8, "not sure"
    assert not POLICY.may_shorten("My dog likes bones.", 0.05, sentence_end=0.6)
