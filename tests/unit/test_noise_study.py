"""The noise study's word error count, and the clips it makes."""

import numpy as np
import pytest

from scripts.noise_study import RATE, errors, noisy


@pytest.mark.parametrize(
    ("said", "heard", "expected"),
    [
        ("What is two plus two?", "What is 2 plus two?", (0, 5)),  # digits read as words
        ("What is two plus two?", "What is 2 plus 3?", (1, 5)),  # one word replaced
        ("Why do cats purr?", "Why do cats per, per?", (2, 4)),  # replaced and inserted
        ("Can elephants swim?", "Can swim", (1, 3)),  # dropped
    ],
)
def test_word_errors_are_the_edit_distance_over_words(said, heard, expected):
    assert errors(said, heard) == expected


def test_a_clip_has_the_asked_signal_to_noise_ratio():
    speech = np.sin(np.linspace(0, 2000, RATE)).astype(np.float32) * 0.3
    clip = noisy(speech, 10, seed=1).astype(np.float64)
    quiet = clip[: RATE // 2]  # the lead: noise alone
    said = np.concatenate([np.zeros(RATE), speech, np.zeros(2 * RATE)])
    signal = said / np.abs(said).max() * 0.5 * 32767
    ratio = np.sqrt(np.mean(signal[RATE : 2 * RATE] ** 2)) / np.sqrt(np.mean(quiet**2))
    assert 20 * np.log10(ratio) == pytest.approx(10, abs=1)
    assert np.array_equal(noisy(speech, None, seed=1)[: RATE // 2], np.zeros(RATE // 2))
