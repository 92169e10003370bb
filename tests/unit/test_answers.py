"""AnswerGuard: answers for the ear, fed as an LLM streams them (in pieces of any size)."""

import pytest

from bot.answers import AnswerGuard


def spoken(text: str, *, step: int, **limits) -> tuple[str, bool]:
    guard = AnswerGuard(**limits)
    out = "".join(guard.feed(text[i : i + step]) for i in range(0, len(text), step))
    return (out + guard.flush()).strip(), guard.stopped


STEPS = [1, 3, 7, 1000]


@pytest.mark.parametrize("step", STEPS)
def test_a_short_answer_passes_whole(step):
    text = "Bees make honey from nectar. They keep it in wax cells. Isn't that sweet?"
    assert spoken(text, step=step) == (text, False)


@pytest.mark.parametrize("step", STEPS)
def test_at_most_three_sentences(step):
    text = "One fish swims. Two fish dive. Three fish rest. Four fish sleep."
    assert spoken(text, step=step) == ("One fish swims. Two fish dive. Three fish rest.", True)


@pytest.mark.parametrize("step", STEPS)
def test_a_sentence_said_before_ends_the_answer(step):
    text = "They're called cats. They're the cat. They're the cat. They're the cat."
    assert spoken(text, step=step) == ("They're called cats. They're the cat.", True)


@pytest.mark.parametrize("step", STEPS)
def test_a_first_sentence_going_round_in_circles_is_cut_where_it_repeats(step):
    text = "The moon shines with the light that makes up the light of the moon and the light that makes up the light of the moon"
    out, stopped = spoken(text, step=step)
    assert (
        stopped
        and out
        == "The moon shines with the light that makes up the light of the moon and the light that"
    )


@pytest.mark.parametrize("step", STEPS)
def test_a_later_sentence_that_repeats_an_earlier_phrase_is_dropped(step):
    text = "Plants need light to grow. Water helps too. Plants need light to grow tall."
    assert spoken(text, step=step) == ("Plants need light to grow. Water helps too.", True)


def test_the_word_budget_ends_on_a_whole_sentence():
    text = (
        "Stars are suns. "
        + "They are very far away from us in space. " * 1
        + "Some are bigger than ours."
    )
    assert spoken(text, step=5, max_words=12) == (
        "Stars are suns. They are very far away from us in space.",
        True,
    )


def test_the_first_sentence_streams_before_it_ends():
    guard = AnswerGuard()
    assert guard.feed("Bees make hon") == "Bees make "  # a word still being written waits
    assert guard.feed("ey by collecting") == "honey by "
    assert guard.feed(" nectar.") == "collecting "
    assert guard.feed(" They fly") == "nectar. "  # later sentences wait for their end
    assert guard.feed(" far.") == ""
    assert guard.flush() == "They fly far."


def test_reset_starts_a_new_answer():
    guard = AnswerGuard(max_sentences=1)
    guard.feed("One. Two. ")
    assert guard.stopped
    guard.reset()
    assert not guard.stopped and guard.feed("Three") == "" and guard.flush() == "Three"


def test_a_first_sentence_broken_by_a_newline_is_spoken_in_order():
    """A piece that ends in a newline ends its word, too (`$` alone also matched before it)."""
    guard = AnswerGuard()
    out = guard.feed("Bees make\n") + guard.feed("honey from nectar") + guard.flush()
    assert out.split() == ["Bees", "make", "honey", "from", "nectar"]


def test_an_answer_cut_by_the_token_limit_ends_at_its_last_whole_sentence():
    guard = AnswerGuard()
    assert (
        guard.feed("Salt comes from rocks. Rivers carry it down to the")
        == "Salt comes from rocks. "
    )
    assert guard.flush(complete=False) == "", "half a sentence is not spoken"
    # The first sentence has streamed already: its last word still comes.
    guard.reset()
    assert guard.feed("Salt comes from rocks that rivers") == "Salt comes from rocks that "
    assert guard.flush(complete=False) == "rivers"


@pytest.mark.parametrize("step", STEPS)
def test_a_title_or_an_initial_does_not_end_a_sentence(step):
    text = "Dr. Seuss wrote it. J. K. Rowling wrote more, e.g. magic. Mrs. Lee reads them. Yes."
    # Three sentences, not seven: the fourth is over the limit.
    assert spoken(text, step=step) == (
        "Dr. Seuss wrote it. J. K. Rowling wrote more, e.g. magic. Mrs. Lee reads them.",
        True,
    )


@pytest.mark.parametrize("step", STEPS)
def test_a_sentence_ends_behind_closing_quotes_or_brackets(step):
    # As SmolLM2 wrote one answer: the quotes hid two sentence ends, and five were spoken.
    text = (
        'Plants need water. They need sunlight! They need food to grow healthy."" '
        "That's really good information!\" You're right, Miss Harper!"
    )
    assert spoken(text, step=step) == (
        'Plants need water. They need sunlight! They need food to grow healthy.""',
        True,
    )
    text = 'She said "Be kind." Then she smiled (as always.) The end! Really!'
    assert spoken(text, step=step) == (
        'She said "Be kind." Then she smiled (as always.) The end!',
        True,
    )
