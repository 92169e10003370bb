"""What an engine provides, and the one registry of engines.

Engines are imported lazily: the registry holds import paths, and each engine imports its own
speech package only inside `load()`, so the server starts (and `/health` answers) without
paying for, or even having installed, engines it does not use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from xtts.config import Settings
    from xtts.voices import Latents, Voice


@dataclass(frozen=True)
class EngineSpec:
    """Where an engine lives, and the settings it cannot start without."""

    target: str  # "module:class", imported only when the engine is chosen
    required_settings: tuple[str, ...] = ()


# The only place that knows which engines exist.
ENGINES: dict[str, EngineSpec] = {
    "hibari": EngineSpec("xtts.engines.hibari:HibariEngine"),
    "piper": EngineSpec("xtts.engines.piper:PiperEngine"),
    "xtts": EngineSpec("xtts.engines.xtts:XttsEngine", required_settings=("xtts_model_dir",)),
}


class EngineSetupError(RuntimeError):
    """The engine cannot start: a missing extra, a bad voice or model path. One plain line."""


@runtime_checkable
class TTSEngine(Protocol):
    """A speech engine. One instance synthesizes one request at a time (the server queues)."""

    name: str
    can_clone: bool

    @property
    def sample_rate(self) -> int:
        """Native output rate in Hz; the server resamples to 24 kHz."""
        ...

    @property
    def languages(self) -> list[str]:
        """XTTS language codes this engine speaks (valid after `load`)."""
        ...

    @property
    def default_voice(self) -> str:
        """The voice used when TTS_VOICE is not set."""
        ...

    def load(self) -> None:
        """Load models; blocking, called once off the event loop. Raises EngineSetupError."""
        ...

    def voices(self) -> dict[str, Latents]:
        """The studio speakers to offer: voice name -> latents."""
        ...

    def resolve_voice(self, latents: Latents) -> Voice | None:
        """The voice that `latents` select, or None when they match no voice of this engine."""
        ...

    def sentence_limit(self, language: str) -> int:
        """Longest piece of text, in characters, to hand to `synthesize` at once."""
        ...

    def synthesize(
        self, text: str, voice: Voice, language: str, *, stream_chunk_size: int = 20
    ) -> Iterator[np.ndarray]:
        """Float32 mono chunks at `sample_rate`, each as soon as it is ready."""
        ...

    def clone(self, wav: bytes) -> Latents:
        """Latents for the speaker in a reference recording (only when `can_clone`)."""
        ...


def create_engine(settings: Settings) -> TTSEngine:
    """Instantiate the engine named by TTS_ENGINE (cheap: nothing heavy is loaded yet)."""
    try:
        spec = ENGINES[settings.tts_engine]
    except KeyError:
        raise EngineSetupError(
            f"TTS_ENGINE: must be one of {', '.join(ENGINES)} (got {settings.tts_engine!r})"
        ) from None
    module_name, _, class_name = spec.target.partition(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class(settings)


def missing_extra(engine: str, extra: str, error: ImportError) -> EngineSetupError:
    """The error for an engine whose packages are not installed, naming the extra to add."""
    return EngineSetupError(
        f"TTS_ENGINE={engine} needs packages that are not installed ({error.name or error}); "
        f"install them with `uv sync --extra {extra}`"
    )


def unknown_voice(engine: str, voice: str, available: list[str]) -> EngineSetupError:
    return EngineSetupError(
        f"TTS_VOICE: the {engine} engine has no voice {voice!r}; "
        f"available: {', '.join(available) or 'none'}"
    )
