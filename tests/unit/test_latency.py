"""Latency records: stage folding, the page message, the call summary."""

import pytest

from bot.latency import STAGES, CallLatency, TurnLatency, percentile

# A turn as Pipecat's UserBotLatencyObserver reports it (key, start, seconds), the turn ended
# once the answer's own work began.
CONTRIBUTIONS = [
    ("endpointing_wait", 0.0, 0.200),
    ("transcription", 0.2, 0.150),
    ("turn_detection", 0.35, 0.050),
    ("llm_inference", 0.4, 0.120),
    ("sentence_aggregation", 0.52, 0.030),
    ("speech_synthesis", 0.55, 0.040),
    ("output_transport", 0.59, 0.008),
    ("pipeline", 0.0, 0.002),
]


def test_contributions_fold_into_five_stages_that_sum_to_the_total():
    turn = TurnLatency.from_contributions(1, CONTRIBUTIONS)
    assert turn.stages == pytest.approx(
        {"endpointing": 0.25, "stt": 0.15, "llm": 0.12, "tts": 0.07, "rest": 0.01}
    )
    assert turn.total == pytest.approx(0.6)


def test_the_answers_work_before_the_turn_was_confirmed_is_endpointing():
    """Started speculatively and held: the caller waited for the verdict (at 0.45 s), and only
    what came after it counts for the LLM, TTS and output."""
    turn = TurnLatency.from_contributions(1, CONTRIBUTIONS, decided=0.45)
    assert turn.stages == pytest.approx(
        {"endpointing": 0.3, "stt": 0.15, "llm": 0.07, "tts": 0.07, "rest": 0.01}
    )
    assert turn.total == pytest.approx(0.6), "the total is the same"


def test_unknown_keys_count_as_unattributed_rest():
    turn = TurnLatency.from_contributions(
        1, [("something_new", 0.0, 0.3), ("transcription", 0.3, 0.1)]
    )
    assert turn.stages["rest"] == pytest.approx(0.3)
    assert turn.total == pytest.approx(0.4)


def test_page_message_and_log_line_carry_every_stage():
    turn = TurnLatency.from_contributions(2, CONTRIBUTIONS)
    message = turn.message()
    assert message["type"] == "latency" and message["turn"] == 2
    assert list(message["stages_ms"]) == list(STAGES)
    assert message["total_ms"] == pytest.approx(600.0)
    assert turn.log_line() == (
        "turn 2: voice-to-voice 600ms (endpointing=250ms stt=150ms llm=120ms tts=70ms rest=10ms)"
    )


def test_percentile_is_nearest_rank():
    assert percentile([1.0], 95) == 1.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile(list(map(float, range(1, 21))), 95) == 19.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0


def test_call_summary_has_a_row_per_turn_then_median_and_p95():
    call = CallLatency()
    call.add(TurnLatency.from_contributions(0, [("speech_synthesis", 0.0, 0.5)], kind="greeting"))
    for n, scale in enumerate((1.0, 2.0, 3.0), start=1):
        call.add(
            TurnLatency.from_contributions(
                n, [(k, t * scale, s * scale) for k, t, s in CONTRIBUTIONS]
            )
        )
    table = call.summary_table().splitlines()
    assert table[0].split() == ["turn", *STAGES, "total"]
    assert [row.split()[0] for row in table[2:]] == ["greeting", "1", "2", "3", "median", "p95"]
    assert table[-2].split()[-1] == "1200ms"  # median of 600, 1200, 1800
    assert table[-1].split()[-1] == "1800ms"
    assert call.stats() == {"turns": 3, "median": pytest.approx(1.2), "p95": pytest.approx(1.8)}


def test_a_call_without_user_turns_has_no_stats():
    call = CallLatency()
    call.add(TurnLatency.from_contributions(0, [("speech_synthesis", 0.0, 0.5)], kind="greeting"))
    assert call.stats() is None
    assert "median" not in call.summary_table()
