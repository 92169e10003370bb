"""What the TTS server hands its engine: long digit runs spelled out, invisible characters gone."""

import pytest

from xtts.text import has_words, speakable


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("It costs 1,000,000 dollars.", "It costs 1,000,000 dollars."),
        ("Call 555 0100.", "Call 555 0100."),
        ("Card 1234567890123456.", "Card 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6."),
        ("year 2026 and 123456789012345", "year 2026 and 123456789012345"),  # 15: a number
        ("tab\tand\nline", "tab\tand\nline"),
        ("bell\x07here", "bell here"),
        ("zero\u200bwidth", "zerowidth"),
    ],
)
def test_speakable(text, said):
    assert speakable(text) == said


@pytest.mark.parametrize(
    ("text", "words"),
    [("😀", False), ("?!…", False), ("\x01", False), ("٣", True), ("é", True), ("水", True)],
)
def test_has_words(text, words):
    assert has_words(text) is words
