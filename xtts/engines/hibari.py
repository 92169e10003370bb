"""hibari: a small, fast English engine (Apache-2.0), 24 kHz, CPU only."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from xtts.audio import trim_silence
from xtts.engines.base import EngineSetupError, missing_extra, unknown_voice
from xtts.voices import NamedVoiceEngine, Voice, VoiceBook

if TYPE_CHECKING:
    from xtts.config import Settings

log = logging.getLogger(__name__)

# Only "heart" ships inside the package; hibari fetches its other voices from the network on
# first use, which a self-hosted server must not depend on.
VOICES = ("heart",)


class HibariEngine(NamedVoiceEngine):
    """Wraps `hibari.Hibari`, whose `stream()` yields one array per sentence."""

    name = "hibari"
    default_voice = "heart"
    sample_rate = 24000

    def __init__(self, settings: Settings) -> None:
        self._voice = settings.tts_voice or self.default_voice
        self._threads = settings.tts_threads
        self._device = settings.tts_device
        self._book = VoiceBook([self._voice])
        self._tts: Any = None

    @property
    def languages(self) -> list[str]:
        return ["en"]

    def load(self) -> None:
        if self._voice not in VOICES:
            raise unknown_voice(self.name, self._voice, list(VOICES))
        if self._device != "cpu":
            log.warning("hibari runs on the CPU only; TTS_DEVICE=%s is ignored", self._device)
        try:
            from hibari import Hibari
        except ImportError as error:
            raise missing_extra(self.name, error) from error
        try:
            self._tts = Hibari(voice=self._voice, threads=self._threads)
        # hibari raises RuntimeError, ValueError or OSError, and onnxruntime its own types that
        # derive from Exception alone (Fail, NoSuchFile, InvalidProtobuf): nothing narrower fits.
        except Exception as error:
            log.debug("hibari could not load", exc_info=error)
            raise EngineSetupError(
                f"hibari could not load voice {self._voice!r}: {error}"
            ) from error
        # The first call loads the pronunciation lexicons (about a second); pay for it now so
        # the first request is as fast as the rest and /ready means ready.
        for _ in self._tts.stream("Ready."):
            pass

    def synthesize(
        self, text: str, voice: Voice, language: str, *, stream_chunk_size: int = 20
    ) -> Iterator[np.ndarray]:
        # hibari pads each sentence with about 0.3 s of silence before and 0.45 s after it.
        for chunk in self._tts.stream(text):
            yield trim_silence(np.asarray(chunk, dtype=np.float32), self.sample_rate)
