"""What an engine provides, and the one registry of engines.

Engines are imported lazily: the registry holds import paths, and each engine imports its own
speech package only inside `load()`, so the server starts (and `/health` answers) without
paying for, or even having installed, engines it does not use.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from xtts.config import Settings
    from xtts.voices import Latents, Voice


@dataclass(frozen=True)
class EngineSpec:
    """Where an engine lives, what it needs installed, and the settings it cannot start without."""

    target: str  # "module:class", imported only when the engine is chosen
    extra: str  # the pyproject extra that installs its speech packages
    packages: tuple[str, ...]  # their top-level import names
    required_settings: tuple[str, ...] = ()


# The only place that knows which engines exist.
ENGINES: dict[str, EngineSpec] = {
    "hibari": EngineSpec("xtts.engines.hibari:HibariEngine", "tts", ("hibari",)),
    "piper": EngineSpec("xtts.engines.piper:PiperEngine", "piper", ("piper",)),
    "xtts": EngineSpec(
        "xtts.engines.xtts:XttsEngine",
        "xtts",
        ("TTS", "torch"),
        required_settings=("xtts_model_dir",),
    ),
}


class EngineSetupError(RuntimeError):
    """The engine cannot start: a missing extra, a bad voice or model path. One plain line."""


class EngineUnavailable(EngineSetupError):
    """The engine cannot run on this machine: its packages or its model files are not installed.

    Not a mistake in the settings: `python -m xtts` exits with EXIT_UNAVAILABLE for it, and
    `make run` then falls back to the offline engine.
    """


def not_installed(engine: str) -> str | None:
    """Why `engine` cannot run here for want of its packages, or None when they are installed.

    Looks the packages up without importing them (torch alone takes seconds)."""
    spec = ENGINES[engine]
    missing = [name for name in spec.packages if importlib.util.find_spec(name) is None]
    return _needs_packages(engine, ", ".join(missing)) if missing else None


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


def create_engine(name: str, settings: Settings) -> TTSEngine:
    """Instantiate the engine `name` (see `choose_engine`; cheap: nothing heavy is loaded yet)."""
    try:
        spec = ENGINES[name]
    except KeyError:
        raise EngineSetupError(
            f"TTS_ENGINE: must be one of {', '.join(ENGINES)} (got {name!r})"
        ) from None
    module_name, _, class_name = spec.target.partition(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class(settings)


def missing_extra(engine: str, error: ImportError) -> EngineUnavailable:
    """The error for an engine whose packages are not installed, naming the extra to add."""
    return EngineUnavailable(_needs_packages(engine, str(error.name or error)))


def _needs_packages(engine: str, missing: str) -> str:
    return (
        f"TTS_ENGINE={engine} needs packages that are not installed ({missing}); "
        f"install them with `uv sync --extra {ENGINES[engine].extra}`"
    )


def unknown_voice(engine: str, voice: str, available: list[str]) -> EngineSetupError:
    return EngineSetupError(
        f"TTS_VOICE: the {engine} engine has no voice {voice!r}; "
        f"available: {', '.join(available) or 'none'}"
    )
