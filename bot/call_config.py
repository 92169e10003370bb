"""One call's pipeline configuration: the kit's (from Settings), or the seed's.

The seed is the blog experiment the kit grew from: Pipecat's stock `XTTSService`, a 0.5 s VAD
stop, Smart Turn alone with its 1.5 s fallback, Whisper on the full 30 s window, the first
sentence whole before any speech, nothing overlapped. A caller asks for it with
`{"profile": "seed"}` in the offer's requestData (or the WebSocket's start message), so that
`make bench COMPARE=seed` can put both through the same questions on the same stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.config import Settings

Profile = Literal["kit", "seed"]
PROFILES: tuple[Profile, ...] = ("kit", "seed")


@dataclass(frozen=True)
class CallConfig:
    vad_stop_secs: float
    turn_detection: Literal["hybrid", "smart-turn", "silence"]
    turn_stop_secs: float
    turn_silence_secs: float
    trim_window: bool
    stock_tts: bool  # Pipecat's XTTSService: no early first clause, audio in 1 s blocks
    read_ahead_secs: float = 0.0  # the caller's words read into the LLM while they speak


def call_config(settings: Settings, profile: Profile = "kit") -> CallConfig:
    if profile == "seed":
        return CallConfig(
            vad_stop_secs=0.5,
            turn_detection="smart-turn",
            turn_stop_secs=1.5,
            turn_silence_secs=settings.turn_silence_secs,
            trim_window=False,
            stock_tts=True,
        )
    return CallConfig(
        vad_stop_secs=settings.vad_stop_secs,
        turn_detection=settings.turn_detection,
        turn_stop_secs=settings.turn_stop_secs,
        turn_silence_secs=settings.turn_silence_secs,
        trim_window=settings.whisper_trim_window,
        stock_tts=False,
        read_ahead_secs=settings.llm_read_ahead_secs,
    )
