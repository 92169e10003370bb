"""The TTS text cutter: an early first clause, then whole sentences unless one runs on."""

from bot.answers import AnswerGuard
from bot.text import FirstClauseAggregator


async def pieces(aggregator, stream: list[str]) -> list[str]:
    out = []
    for token in stream:
        out += [a.text async for a in aggregator.aggregate(token)]
    remaining = await aggregator.flush()
    return [*out, remaining.text] if remaining and remaining.text else out


def tokens(text: str) -> list[str]:
    return [text[i : i + 3] for i in range(0, len(text), 3)]  # LLM-sized pieces


async def test_first_piece_ends_at_the_first_clause_break_then_sentences():
    text = "The sky, you see, looks blue in the day. Blue scatters most. Neat!"
    assert await pieces(FirstClauseAggregator(), tokens(text)) == [
        "The sky, you see,",
        "looks blue in the day.",
        "Blue scatters most.",
        "Neat!",
    ]


async def test_a_long_first_sentence_ends_its_first_piece_before_a_new_phrase():
    text = "Bees make honey by collecting nectar from flowers. They store it in wax."
    assert await pieces(FirstClauseAggregator(), tokens(text)) == [
        "Bees make honey",
        "by collecting nectar from flowers.",
        "They store it in wax.",
    ]


async def test_a_short_opening_waits_for_more_words():
    # "Yes," alone is too short a piece; the phrase word "and" comes after three words.
    text = "Yes, plants need water and light. They grow!"
    assert await pieces(FirstClauseAggregator(), tokens(text)) == [
        "Yes, plants need water",
        "and light.",
        "They grow!",
    ]


async def test_a_first_piece_without_any_break_ends_at_max_words():
    text = "One two three four five six seven eight nine ten."
    first, *rest = await pieces(FirstClauseAggregator(max_words=8), tokens(text))
    assert first == "One two three four five six seven eight" and rest == ["nine ten."]


async def test_a_long_first_piece_is_cut_before_a_noun_phrase_rather_than_inside_it():
    text = "Cats purr because it's a natural behaviour for them. They like it."
    first, second, *_ = await pieces(FirstClauseAggregator(), tokens(text))
    assert (first, second) == ("Cats purr because it's", "a natural behaviour for them.")


async def test_a_first_piece_ends_before_of_about_and_using():
    for text, head in [
        ("Akat is the name of a cat in a story.", "Akat is the name"),
        ("Fish breathe underwater using their gills.", "Fish breathe underwater"),
        ("One of my favourite facts about dinosaurs is this.", "One of my favourite facts"),
    ]:
        first, *_ = await pieces(FirstClauseAggregator(), tokens(text))
        assert first == head


async def test_a_short_first_sentence_is_whole_and_each_response_starts_afresh():
    aggregator = FirstClauseAggregator()
    assert await pieces(aggregator, tokens("Paris is lovely. It has a tower, a tall one.")) == [
        "Paris is lovely.",
        "It has a tower, a tall one.",
    ]
    # After flush (the response's end) the next response gets an early first cut again.
    assert await pieces(aggregator, tokens("Spiders have eight legs, insects six.")) == [
        "Spiders have eight legs,",
        "insects six.",
    ]


async def test_a_sentence_that_runs_on_is_cut_at_a_phrase_rather_than_left_to_finish():
    # Said whole, the second sentence would reach the TTS server only once written to its end:
    # the caller would hear "The ocean is salty." and then silence.
    text = (
        "The ocean is salty. Rivers carry tiny bits of salt from rocks on the land all the way "
        "down to the sea and the water then evaporates while the salt stays behind."
    )
    assert await pieces(FirstClauseAggregator(), tokens(text)) == [
        "The ocean is salty.",
        "Rivers carry tiny bits of salt from rocks on the land all the way down",
        "to the sea and the water then evaporates while the salt stays behind.",
    ]


async def test_a_sentence_without_any_break_is_cut_by_max_long_words():
    words = " ".join(f"w{i}" for i in range(30))
    text = f"Hi there friend. {words}."
    _, second, third = await pieces(FirstClauseAggregator(max_long_words=20), tokens(text))
    assert (
        second.split() == [f"w{i}" for i in range(20)]
        and third == "w20 w21 w22 w23 w24 w25 w26 w27 w28 w29."
    )


async def test_each_sentence_the_answer_guard_passes_on_is_spoken_at_once():
    """The guard holds a later sentence until it is whole, so nothing follows a finished one:
    it must not wait for the next sentence's first letter (the lookahead) to be cut."""
    answer = (
        "It's both! A tomato is the fruit of the plant, and it has seeds inside. "
        "We cook it like a vegetable. Yum."
    )
    guard, aggregator = AnswerGuard(), FirstClauseAggregator()
    heard: list[tuple[str, str]] = []  # (piece, the answer as written when it was cut)
    written = ""
    for token in tokens(answer):
        written += token
        async for piece in aggregator.aggregate(guard.feed(token)):
            heard.append((piece.text, written))
    assert [piece for piece, _ in heard] == [
        "It's both!",
        "A tomato is the fruit of the plant, and it has seeds inside.",
        "We cook it like a vegetable.",
    ]
    first, cut_at = heard[0]
    assert "tomato" not in cut_at, f"{first!r} waited for the next sentence: {cut_at!r}"
    # Each later sentence is passed on when its own end is written, not the next one's.
    assert heard[2][1].endswith("vegetable. Y"), heard[2][1]


async def behind_the_guard(answer: str, aggregator: FirstClauseAggregator) -> list[str]:
    """The pieces the TTS server gets for `answer`, streamed through an AnswerGuard first."""
    guard, heard = AnswerGuard(), []
    for token in tokens(answer):
        heard += [piece.text async for piece in aggregator.aggregate(guard.feed(token))]
    return [*heard, guard.flush()]


async def test_a_title_behind_the_answer_guard_is_not_a_piece_of_its_own():
    answer = "Dr. Seuss wrote many funny books for children. They rhyme."
    heard = await behind_the_guard(answer, FirstClauseAggregator())
    assert heard[0] == "Dr. Seuss wrote many funny books", heard


async def test_a_sentence_closed_by_quotes_is_one_piece_behind_the_answer_guard():
    answer = 'It is "yes." It is "no." Maybe!'
    heard = await behind_the_guard(answer, FirstClauseAggregator(min_words=20, max_words=20))
    assert heard == ['It is "yes."', 'It is "no."', "Maybe!"], heard


async def test_an_interruption_starts_a_new_response():
    aggregator = FirstClauseAggregator()
    [_ async for _ in aggregator.aggregate("Once upon a time there was")]
    await aggregator.handle_interruption()
    assert await pieces(aggregator, tokens("Hello there my friend, how are you?")) == [
        "Hello there my friend,",
        "how are you?",
    ]


def test_the_bots_tts_service_cuts_text_this_way():
    # It replaces a private attribute of Pipecat's TTSService: fail loudly if that moves.
    from bot.tts import KitTTSService

    service = KitTTSService(base_url="http://127.0.0.1:1", voice="", language="en", session=None)
    assert isinstance(service._text_aggregator, FirstClauseAggregator)


class Clock:
    """The cutter's clock, moved by hand: each token of a slow model takes `step` seconds."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def written_at(
    aggregator, text: str, secs_per_word: float, clock: Clock
) -> list[tuple[float, str]]:
    """(when, piece) for `text` written a word every `secs_per_word` (no flush)."""
    out = []
    for word in text.split():
        clock.now += secs_per_word
        out += [(clock.now, a.text) async for a in aggregator.aggregate(word + " ")]
    return out


def longest_silence(pieces_: list[tuple[float, str]], words_per_sec: float, lead: float) -> float:
    """The longest wait between two pieces' speech, each spoken `lead` after it is cut at the
    latest."""
    ends, longest = None, 0.0
    for when, piece in pieces_:
        start = when + lead if ends is None else max(ends, when + lead)
        longest = max(longest, 0.0 if ends is None else start - ends)
        ends = start + len(piece.split()) / words_per_sec
    return longest


async def test_a_slow_model_gets_a_piece_passed_on_before_the_voice_runs_out():
    # Seven words a second against a voice of three: without pacing, the second piece would wait
    # for twenty words (2.9 s) while the first piece's six are spoken in 2 s: a hole of 0.9 s.
    clock = Clock()
    aggregator = FirstClauseAggregator(words_per_sec=3.0, lead_secs=0.3, clock=clock)
    text = " ".join(f"w{i}" for i in range(60))
    timed = await written_at(aggregator, text, 1 / 7, clock)
    sizes = [len(piece.split()) for _, piece in timed]
    assert sizes[0] == 6 and 3 <= sizes[1] < 20, sizes  # the second piece is paced
    assert longest_silence(timed, 3.0, 0.3) < 0.15, timed
    assert sum(sizes) >= 40  # the rest goes at the answer's end (flush)


async def test_a_fast_model_is_not_cut_by_the_pace():
    clock = Clock()
    aggregator = FirstClauseAggregator(words_per_sec=3.0, lead_secs=0.3, clock=clock)
    text = " ".join(f"w{i}" for i in range(40))
    timed = await written_at(aggregator, text, 1 / 60, clock)
    assert [len(piece.split()) for _, piece in timed] == [6, 20], timed


async def test_the_pace_follows_what_the_tts_server_reports():
    # A slow voice (1.5 words a second, measured) leaves more time: the same model is not paced.
    clock = Clock()
    aggregator = FirstClauseAggregator(words_per_sec=3.0, lead_secs=0.3, clock=clock)
    for _ in range(20):
        aggregator.spoken(6, 4.0, 0.1)
    text = " ".join(f"w{i}" for i in range(40))
    timed = await written_at(aggregator, text, 1 / 7, clock)
    assert [len(piece.split()) for _, piece in timed][:2] == [6, 20], timed


async def test_an_interruption_forgets_what_was_left_to_speak():
    clock = Clock()
    aggregator = FirstClauseAggregator(clock=clock)
    await written_at(aggregator, "one two three four five six seven", 0.01, clock)
    await aggregator.handle_interruption()
    assert aggregator._spoken_by == 0.0
