"""The turn study's replay of `TurnPolicy` over a clip's timeline of Smart Turn scores."""

import pytest

from bot.turns import TurnPolicy
from scripts.turn_study import STEP_SECS, turn_end

STEPS = 40  # 2 s of silence


def timeline(low_until: float, low: float = 0.05, high: float = 0.95) -> tuple[float, ...]:
    """Smart Turn scores, one per step of silence: `low` until `low_until`, then `high`."""
    return tuple(low if (i + 1) * STEP_SECS < low_until else high for i in range(STEPS))


@pytest.mark.parametrize(
    ("heard", "probabilities", "ends"),
    [
        ("Why is the sky blue?", timeline(9), 0.2),  # a question mark: the VAD's stop
        ("Tell me about frogs.", timeline(0), 0.2),
        ("Tell me about frogs.", timeline(0.4), 0.4),  # rescored as the silence grows
        ("Tell me about frogs.", timeline(9), 1.2),  # the unsure wait, after the VAD's stop
        ("My favourite animal is the", timeline(0), 1.0),  # unfinished, however sure
        ("When I went to the park...", timeline(0.5), 1.0),
        ("When I went to the park...", timeline(9), 1.7),  # the open wait
        ("I was wondering,", timeline(0), 1.7),
    ],
)
def test_a_turn_ends_when_the_strategy_would_end_it(heard, probabilities, ends):
    assert turn_end(TurnPolicy(), heard, probabilities) == pytest.approx(ends)
