"""Server settings, read from the environment and an optional `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVICES = ("cpu", "cuda", "mps")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    normalized = value.strip().lower()
    if normalized not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return normalized


class Settings(BaseSettings):
    """Every setting maps to the upper-case environment variable of the same name."""

    # The `.env` file is shared with the bot, so unknown variables are expected and ignored.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    # The first field of each section, and its title (scripts/settings_docs.py).
    SECTIONS: ClassVar[dict[str, str]] = {"tts_engine": "TTS server"}

    # Checked, and `auto` resolved, by xtts.engines.choice.choose_engine: the engines read these
    # settings, so the settings cannot know the engines.
    tts_engine: str = Field(
        default="hibari",
        description="hibari (Apache-2.0, CPU-fast, the default) | piper (GPL-3.0 engine, CC0 voice) "
        "| xtts (XTTS v2, CPML non-commercial; needs the `xtts` extra and its weights in "
        "XTTS_MODEL_DIR) | auto (xtts when both are there, else hibari)",
    )
    tts_device: str = Field(
        default="cpu", description=f"Where the engine runs: {' | '.join(DEVICES)}"
    )
    # None: the engine's own default voice.
    tts_voice: str | None = Field(
        default=None,
        description="The voice when a request names none: a studio-speaker name (hibari: heart; "
        'piper: joe; xtts: e.g. "Claribel Dervla"). Empty = the engine\'s default voice.',
    )
    tts_host: str = Field(default="0.0.0.0", description="The address the TTS server listens on")
    tts_port: int = Field(default=8001, ge=1, le=65535, description="The TTS server's port")
    tts_max_text_chars: int = Field(
        default=2000,
        ge=1,
        description="The longest text one request may carry; longer text gets 413. Text is "
        "synthesized sentence by sentence.",
    )
    tts_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="CPU threads of the engine: onnxruntime's for hibari and piper, torch's for "
        "XTTS v2",
    )
    tts_log_level: str = Field(
        default="info", description=f"The TTS server's log level: {' | '.join(LOG_LEVELS)}"
    )
    xtts_model_dir: Path | None = Field(
        default=None,
        description="XTTS v2 folder with config.json, model.pth, vocab.json and speakers_xtts.pth "
        "(TTS_ENGINE=xtts)",
    )

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


def describe_error(error: ValidationError) -> list[str]:
    """One plain line per bad setting, e.g. `TTS_DEVICE: must be one of ... (got 'gpu')`."""
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
