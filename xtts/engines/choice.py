"""Which engine TTS_ENGINE picks: the name checked, `auto` resolved, the engine's settings checked.

Outside the settings because the engines read the settings: the settings know no engine, and
this module knows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xtts.engines.base import ENGINES
from xtts.engines.xtts import xtts_installed

if TYPE_CHECKING:
    from xtts.config import Settings

# TTS_ENGINE=auto: XTTS v2 where its weights and coqui-tts are installed (an image built with
# COQUI_TOS_AGREED=1), else the permissive offline engine.
AUTO = "auto"
AUTO_FALLBACK = "hibari"


class InvalidEngineSetting(ValueError):
    """TTS_ENGINE, or a setting its engine requires, is wrong: one plain line naming the variable.

    Shaped like `xtts.config.describe_error`'s lines; `python -m xtts` exits with 2 for it.
    """


@dataclass(frozen=True)
class EngineChoice:
    """The engine to run, and how TTS_ENGINE=auto chose it."""

    name: str  # a key of ENGINES
    # For the start-up log; empty when TTS_ENGINE named the engine.
    auto_choice: str = ""


def choose_engine(settings: Settings) -> EngineChoice:
    """The engine TTS_ENGINE picks. Raises InvalidEngineSetting for an unknown engine, or for a
    setting the chosen engine cannot start without."""
    allowed = [AUTO, *ENGINES]
    name = settings.tts_engine.strip().lower()
    if name not in allowed:
        raise InvalidEngineSetting(
            f"TTS_ENGINE: must be one of {', '.join(allowed)} (got {settings.tts_engine!r})"
        )
    if name != AUTO:
        choice = EngineChoice(name)
    elif xtts_installed(settings.xtts_model_dir):
        choice = EngineChoice("xtts", f"TTS_ENGINE=auto: XTTS v2 from {settings.xtts_model_dir}")
    else:
        choice = EngineChoice(
            AUTO_FALLBACK,
            f"TTS_ENGINE=auto: {AUTO_FALLBACK}, as XTTS v2 is not installed here "
            "(its weights in XTTS_MODEL_DIR, and coqui-tts)",
        )
    _check_required_settings(choice.name, settings)
    return choice


def _check_required_settings(engine: str, settings: Settings) -> None:
    # Checked here rather than at model load so a missing path fails before start-up.
    # Only for the chosen engine: a shared .env may name paths other engines use.
    for field in ENGINES[engine].required_settings:
        value = getattr(settings, field)
        if value is None:
            raise InvalidEngineSetting(f"{field.upper()}: required when TTS_ENGINE={engine}")
        if isinstance(value, Path) and not value.is_dir():
            raise InvalidEngineSetting(f"{field.upper()}: not a directory (got '{value}')")
