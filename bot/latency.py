"""Per-turn latency records, the end-of-call summary table, and the message sent to the page.

Pipecat's `UserBotLatencyObserver` splits each voice-to-voice interval into named contributions
that sum to the whole. We fold them into the five stages a developer tunes separately.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

STAGES = ("endpointing", "stt", "llm", "tts", "rest")

# Contribution keys (pipecat.observers.user_bot_latency_observer) → our stage.
# Anything not listed (output transport, frame hops, new keys) is the unattributed "rest".
_STAGE_OF_KEY = {
    "endpointing_wait": "endpointing",
    "turn_detection": "endpointing",
    "waiting_for_user": "endpointing",
    "transcription": "stt",
    "first_request": "llm",
    "llm_inference": "llm",
    "turn_completion": "llm",
    "awaiting_speakable_text": "llm",
    "llm_tool_call": "llm",
    "function_handler": "llm",
    "sentence_aggregation": "tts",
    "speech_synthesis": "tts",
}


@dataclass(frozen=True)
class TurnLatency:
    """One turn: voice-to-voice seconds and how they split into stages."""

    turn: int
    total: float
    stages: dict[str, float]
    kind: str = "turn"  # "turn" (from the user's silence) or "greeting" (from connecting)

    @classmethod
    def from_contributions(
        cls,
        turn: int,
        contributions: list[tuple[str, float, float]],
        kind: str = "turn",
        decided: float | None = None,
    ) -> TurnLatency:
        """Fold (key, start, seconds) contributions, times from the caller's last word, into the
        stages. The answer's own work (LLM, TTS, output) done before `decided`, when the turn
        was confirmed, counts as endpointing: it was started speculatively and held
        (bot/speculation.py), so the caller waited for the verdict, not for it."""
        stages: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        for key, start, secs in contributions:
            stage = _STAGE_OF_KEY.get(key, "rest")
            waited = 0.0
            if decided is not None and stage != "stt" and key != "pipeline":
                waited = min(secs, max(0.0, decided - start))
            stages["endpointing"] += waited
            stages[stage] += secs - waited
        return cls(turn, sum(stages.values()), stages, kind)

    def log_line(self) -> str:
        parts = " ".join(f"{name}={secs * 1000:.0f}ms" for name, secs in self.stages.items())
        return f"{self.kind} {self.turn}: voice-to-voice {self.total * 1000:.0f}ms ({parts})"

    def message(self) -> dict[str, Any]:
        """The page's copy, sent as an RTVI server message."""
        return {
            "type": "latency",
            "kind": self.kind,
            "turn": self.turn,
            "total_ms": round(self.total * 1000, 1),
            "stages_ms": {name: round(secs * 1000, 1) for name, secs in self.stages.items()},
        }


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; fine for the handful of turns in a call."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class CallLatency:
    """Every turn of one call, and the summary printed when it ends."""

    turns: list[TurnLatency] = field(default_factory=list)

    def add(self, turn: TurnLatency) -> None:
        self.turns.append(turn)

    def user_turns(self) -> list[TurnLatency]:
        return [t for t in self.turns if t.kind == "turn"]

    def stats(self) -> dict[str, float] | None:
        totals = [t.total for t in self.user_turns()]
        if not totals:
            return None
        return {
            "turns": len(totals),
            "median": statistics.median(totals),
            "p95": percentile(totals, 95),
        }

    def summary_table(self) -> str:
        """A fixed-width table: one row per turn, then median and p95 of each column."""
        header = f"{'turn':>8} " + " ".join(f"{s:>11}" for s in STAGES) + f" {'total':>9}"
        rows = [header, "-" * len(header)]
        for t in self.turns:
            label = f"{t.turn}" if t.kind == "turn" else "greeting"
            cells = " ".join(f"{t.stages[s] * 1000:9.0f}ms" for s in STAGES)
            rows.append(f"{label:>8} {cells} {t.total * 1000:7.0f}ms")
        turns = self.user_turns()
        if turns:
            for name, fn in (("median", statistics.median), ("p95", lambda v: percentile(v, 95))):
                cells = " ".join(
                    f"{fn([t.stages[s] for t in turns]) * 1000:9.0f}ms" for s in STAGES
                )
                rows.append(f"{name:>8} {cells} {fn([t.total for t in turns]) * 1000:7.0f}ms")
        return "\n".join(rows)
