"""How `make bench` judges a turn from what the bot reported, and its overlap mode a trial."""

import pytest

from scripts.bench import Turn
from scripts.bench_overlap import Trial, silenced_at, summarize

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


def test_the_overlap_mode_takes_the_bot_as_silent_at_its_last_sound_before_a_quiet_stretch():
    # Loud frames every 20 ms, then a 0.1 s gap between words, then silence.
    loud = [0.0, 0.02, 0.04, 0.06, 0.16, 0.18, 0.2]
    assert silenced_at(loud) == 0.2
    assert silenced_at([0.0, 0.02, 0.5, 0.52]) == 0.02, "0.48 s of quiet: it had stopped"
    assert silenced_at([]) is None


def test_the_overlap_mode_counts_kept_backchannels_and_obeyed_interruptions():
    kept = Trial("backchannel", "Okay.", "flite slt", "clean", 1.0, longest_gap_ms=400)
    stopped = Trial("backchannel", "Mm-hm.", "espeak", "clean", 1.0, interrupted=True)
    obeyed = Trial("interruption", "Stop.", "piper joe", "clean", 1.2, interrupted=True)
    obeyed.silence_ms, obeyed.to_the_interruption = 300.0, True
    ignored = Trial("interruption", "Wait.", "piper joe", "clean", 1.2)
    void = Trial("interruption", "Hold on.", "piper joe", "clean", 3.0, error="ended first")
    summary = summarize([kept, stopped, obeyed, ignored, void])
    assert (summary["backchannels"], summary["backchannels_kept"]) == (2, 1)
    assert (summary["interruptions"], summary["interruptions_obeyed"]) == (2, 1)
    assert summary["false_resumptions"] == 1 and summary["answered_as_interruptions"] == 1
    assert summary["interruption_to_silence_ms"]["median"] == 300.0
    assert summary["void"] == ["Hold on. (ended first)"]
