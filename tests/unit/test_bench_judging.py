"""How `make bench` judges a turn from what the bot reported."""

import pytest

from scripts.bench import Turn

pytestmark = pytest.mark.unit


def stages(endpointing: float, rest: float) -> dict[str, float]:
    return {"endpointing": endpointing, "stt": 2.0, "llm": 30.0, "tts": 150.0, "rest": rest}


def test_a_turn_answered_after_a_long_wait_is_a_stall_whichever_stage_holds_the_wait():
    assert Turn("a", [], total_ms=800, stages_ms=stages(620, 5)).stalled
    # Ended by Pipecat's 5 s user-turn timeout: the VAD's stop counts as the decision.
    assert Turn("b", [], total_ms=5500, stages_ms=stages(200, 5012)).stalled
    assert not Turn("c", [], total_ms=600, stages_ms=stages(400, 20)).stalled
    assert not Turn("d", [], total_ms=600, stages_ms=stages(620, 5), cut=True).stalled, (
        "a cut-in is counted as one, not twice"
    )
