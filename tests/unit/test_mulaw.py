"""The tests' μ-law codec (tests/support), which stands in for `audioop` (gone in Python
3.13): the G.711 reference's codes, and a round trip within μ-law's quantisation."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest

from tests.support import lin2ulaw, ulaw2lin

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int32).astype("<i2").tobytes()


def test_known_codes():
    pcm = np.array([0, -1, 1000, -1000, 32767, -32768], "<i2").tobytes()
    assert list(lin2ulaw(pcm)) == [0xFF, 0x7E, 0xCE, 0x4E, 0x80, 0x00]
    assert np.frombuffer(ulaw2lin(bytes([0xFF, 0x7F, 0x80, 0x00])), "<i2").tolist() == [
        0,
        0,
        32124,
        -32124,
    ]


def test_a_round_trip_is_within_the_quantisation_step():
    x = np.frombuffer(EVERY_SAMPLE, "<i2").astype(np.int32)
    back = np.frombuffer(ulaw2lin(lin2ulaw(EVERY_SAMPLE)), "<i2").astype(np.int32)
    # About 3 % of the level, clipping at ±32124 included, plus the finest step near zero.
    assert np.all(np.abs(back - x) <= 0.036 * np.abs(x) + 16)


@pytest.mark.skipif(importlib.util.find_spec("audioop") is None, reason="audioop is gone")
def test_the_same_codes_as_audioop_while_it_exists():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    assert lin2ulaw(EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE, 2)
    every_code = bytes(range(256))
    assert ulaw2lin(every_code) == audioop.ulaw2lin(every_code, 2)
