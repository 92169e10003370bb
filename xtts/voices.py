"""Speaker latents, and the voices they stand for.

The XTTS contract names a voice by its latents: clients fetch `/studio_speakers` and send the
chosen speaker's `speaker_embedding` and `gpt_cond_latent` back with every request. Engines that
have named voices instead (hibari, piper) give each voice fixed latents derived from its name and
map incoming latents back to the voice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Shapes of XTTS v2 latents as its studio speakers and /clone_speaker carry them.
EMBEDDING_SIZE = 512
LATENT_ROWS = 32
LATENT_WIDTH = 1024

# Largest element-wise difference still taken as the same voice: enough for float16 and
# JSON round trips (errors near 1e-4), far below the gap between two voices (near 1e-1).
MATCH_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Latents:
    """A speaker as XTTS sees it: a (512,) embedding and (32, 1024) GPT conditioning latents."""

    speaker_embedding: np.ndarray
    gpt_cond_latent: np.ndarray

    @classmethod
    def from_lists(cls, speaker_embedding: Any, gpt_cond_latent: Any) -> Latents:
        return cls(
            np.asarray(speaker_embedding, dtype=np.float32).reshape(EMBEDDING_SIZE),
            np.asarray(gpt_cond_latent, dtype=np.float32).reshape(LATENT_ROWS, LATENT_WIDTH),
        )

    def to_json(self, decimals: int = 4) -> dict[str, list]:
        """Plain lists with rounded floats, which keeps `/studio_speakers` a sane size."""
        return {
            "speaker_embedding": _rounded(self.speaker_embedding, decimals),
            "gpt_cond_latent": _rounded(self.gpt_cond_latent, decimals),
        }

    def matches(self, other: Latents, tolerance: float = MATCH_TOLERANCE) -> bool:
        """Whether `other` is this speaker, after lossy transport (float16, JSON, rounding)."""
        return bool(np.max(np.abs(self.speaker_embedding - other.speaker_embedding)) <= tolerance)


def _rounded(values: np.ndarray, decimals: int) -> list:
    # +0.0 turns -0.0 into 0.0, which keeps the JSON one character shorter per value.
    return (np.round(values.astype(np.float64), decimals) + 0.0).tolist()


def named_latents(name: str) -> Latents:
    """Fixed latents for a named voice: a unit embedding hashed from the name, zero GPT latents.

    Derived from SHAKE-256 rather than a seeded RNG so the values never change across numpy
    versions; clients may store them.
    """
    raw = hashlib.shake_256(f"xtts-voice:{name}".encode()).digest(EMBEDDING_SIZE * 2)
    values = np.frombuffer(raw, dtype="<u2").astype(np.float64) / 65535.0 * 2.0 - 1.0
    embedding = np.round(values / np.linalg.norm(values), 4).astype(np.float32)
    return Latents(embedding, np.zeros((LATENT_ROWS, LATENT_WIDTH), dtype=np.float32))


@dataclass(frozen=True)
class Voice:
    """The voice a request asked for: a display name and the latents that select it."""

    name: str
    latents: Latents


class VoiceBook:
    """Named voices and their latents, for engines whose voices are names."""

    def __init__(self, names: Iterable[str]) -> None:
        self._voices = {name: Voice(name, named_latents(name)) for name in names}

    @property
    def names(self) -> list[str]:
        return list(self._voices)

    def latents(self) -> dict[str, Latents]:
        return {name: voice.latents for name, voice in self._voices.items()}

    def match(self, latents: Latents) -> Voice | None:
        """The voice whose embedding `latents` carries, or None for an unknown speaker."""
        for voice in self._voices.values():
            if voice.latents.matches(latents):
                return voice
        return None


class NamedVoiceEngine:
    """What every engine whose voices are names, not latents, has in common (hibari, piper).

    Subclasses set `name` and `_book`; they synthesize, this maps the contract's latents to voices.
    """

    name: str
    can_clone = False
    _book: VoiceBook

    def voices(self) -> dict[str, Latents]:
        return self._book.latents()

    def resolve_voice(self, latents: Latents) -> Voice | None:
        return self._book.match(latents)

    def sentence_limit(self, language: str) -> int:
        from xtts.audio import DEFAULT_SENTENCE_CHARS

        return DEFAULT_SENTENCE_CHARS

    def clone(self, wav: bytes) -> Latents:
        raise NotImplementedError(f"{self.name} cannot clone voices")
