"""The sentence-end model (the bundled SmolLM2-135M on llama.cpp, in-process): it reads phrases
cut off mid-sentence as unfinished, whatever Whisper punctuated, and finished sentences as
finished; the process loads it where the hybrid turn strategy reads with it."""

from __future__ import annotations

import functools

import pytest

from bot.config import Settings
from bot.models import load_sentence_model
from bot.sentence_end import SentenceEndModel, load_sentence_end_model
from bot.turn_policy import Cue, TurnPolicy, cue

pytestmark = pytest.mark.unit


@functools.cache
def model() -> SentenceEndModel:
    loaded = load_sentence_end_model()
    assert loaded is not None, "installed with the bot's extra"
    return loaded


# Phrases the word lists in bot/turn_policy.py take for whole statements.
UNFINISHED = [
    "My teacher told us that.",
    "At the weekend my friends and I.",
    "Every winter my uncle",
]
FINISHED = ["We went to the beach yesterday.", "My sister likes horses.", "Our car is red"]


@pytest.mark.parametrize("text", UNFINISHED)
def test_a_phrase_cut_off_mid_sentence_is_read_as_unfinished(text):
    assert cue(text) in (Cue.SAID, Cue.BARE), "the words alone would end the turn"
    reading = model().probability(text)
    assert TurnPolicy().kind(text, reading) is Cue.UNFINISHED, reading


@pytest.mark.parametrize("text", FINISHED)
def test_a_finished_sentence_is_read_as_finished(text):
    reading = model().probability(text)
    assert TurnPolicy().kind(text, reading) is cue(text), reading


def test_whispers_final_mark_does_not_change_the_reading():
    assert model().probability("Our car is red.") == model().probability("Our car is red")


def test_the_process_loads_it_only_where_the_hybrid_strategy_reads_with_it():
    assert load_sentence_model(Settings(_env_file=None)) is not None
    assert load_sentence_model(Settings(_env_file=None, turn_sentence_model=False)) is None
    assert load_sentence_model(Settings(_env_file=None, turn_detection="smart-turn")) is None
