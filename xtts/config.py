"""Server settings, read from the environment and an optional `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from xtts.engines.base import ENGINES
from xtts.engines.xtts import xtts_installed

# TTS_ENGINE=auto: XTTS v2 where its weights and coqui-tts are installed (an image built with
# COQUI_TOS_AGREED=1), else the permissive offline engine.
AUTO = "auto"
AUTO_FALLBACK = "hibari"
DEVICES = ("cpu", "cuda", "mps")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _one_of(value: str, allowed: tuple[str, ...] | list[str]) -> str:
    normalized = value.strip().lower()
    if normalized not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return normalized


class Settings(BaseSettings):
    """Every setting maps to the upper-case environment variable of the same name."""

    # The `.env` file is shared with the bot, so unknown variables are expected and ignored.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    tts_engine: str = "hibari"
    tts_device: str = "cpu"
    # None: the engine's own default voice.
    tts_voice: str | None = None
    tts_host: str = "0.0.0.0"
    tts_port: int = Field(default=8001, ge=1, le=65535)
    tts_max_text_chars: int = Field(default=2000, ge=1)
    tts_threads: int = Field(default=1, ge=1, le=256)
    tts_log_level: str = "info"
    xtts_model_dir: Path | None = None
    # How TTS_ENGINE=auto chose, for the start-up log; empty when the engine was named.
    _auto_choice: str = PrivateAttr("")

    @field_validator("tts_engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        return _one_of(value, [AUTO, *ENGINES])

    @field_validator("tts_device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        return _one_of(value, DEVICES)

    @field_validator("tts_log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return _one_of(value, LOG_LEVELS)

    @field_validator("tts_voice")
    @classmethod
    def _strip_voice(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @model_validator(mode="after")
    def _engine_requirements(self) -> Settings:
        if self.tts_engine == AUTO:
            if xtts_installed(self.xtts_model_dir):
                self.tts_engine = "xtts"
                self._auto_choice = f"TTS_ENGINE=auto: XTTS v2 from {self.xtts_model_dir}"
            else:
                self.tts_engine = AUTO_FALLBACK
                self._auto_choice = (
                    f"TTS_ENGINE=auto: {AUTO_FALLBACK}, as XTTS v2 is not installed here "
                    "(its weights in XTTS_MODEL_DIR, and coqui-tts)"
                )
        # Checked here rather than at model load so a missing path fails before start-up.
        # Only for the chosen engine: a shared .env may name paths other engines use.
        for field in ENGINES[self.tts_engine].required_settings:
            value = getattr(self, field)
            if value is None:
                raise ValueError(f"{field.upper()}: required when TTS_ENGINE={self.tts_engine}")
            if isinstance(value, Path) and not value.is_dir():
                raise ValueError(f"{field.upper()}: not a directory (got '{value}')")
        return self

    @property
    def auto_choice(self) -> str:
        return self._auto_choice


def describe_error(error: ValidationError) -> list[str]:
    """One plain line per bad setting, e.g. `TTS_ENGINE: must be one of ... (got 'foo')`."""
    lines = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["loc"]:
            name = str(item["loc"][0]).upper()
            lines.append(f"{name}: {_lower_first(message)} (got {_shown(item.get('input'))})")
        else:
            # Cross-field checks already name their variable.
            lines.append(message)
    return lines


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
