"""Text made safe for every engine before it is queued: what cannot be spoken never reaches one."""

from __future__ import annotations

import re
import unicodedata

# Engines expand a number into words; a run this long is no number anyone says (a card, an id),
# and hibari fails on runs of about 36 digits or more. It is read digit by digit instead.
_LONG_DIGITS = re.compile(r"\d{16,}")


def speakable(text: str) -> str:
    """`text` with control and format characters dropped and long digit runs spelled out."""
    kept = "".join(
        " " if unicodedata.category(c) == "Cc" and c not in "\n\t" else c
        for c in text
        if unicodedata.category(c) != "Cf"  # zero-width joiners, direction marks
    )
    return _LONG_DIGITS.sub(lambda run: " ".join(run.group()), kept)


def has_words(text: str) -> bool:
    """Whether there is anything to say: a letter or a digit (not only emoji or punctuation)."""
    return any(unicodedata.category(c)[0] in "LN" for c in text)
