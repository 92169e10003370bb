"""XTTS v2 through coqui-tts (CPML licence, non-commercial): 17 languages, voice cloning.

Only a thin adapter: coqui-tts and torch are imported inside `load()`, and the latents a request
carries are the voice itself, passed to the model as they come.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xtts.audio import DEFAULT_SENTENCE_CHARS  # when the model publishes no limit for a language
from xtts.engines.base import (
    EngineSetupError,
    EngineUnavailable,
    missing_extra,
    not_installed,
    unknown_voice,
)
from xtts.voices import Latents, Voice

if TYPE_CHECKING:
    from xtts.config import Settings

log = logging.getLogger(__name__)

# The first studio speaker of the XTTS v2 release; used when TTS_VOICE is not set.
DEFAULT_VOICE = "Claribel Dervla"
REQUIRED_FILES = ("config.json", "model.pth")


def xtts_installed(model_dir: Path | None) -> bool:
    """Whether XTTS v2 can start: its weights in `model_dir`, coqui-tts and torch installed."""
    if model_dir is None or not all((model_dir / name).is_file() for name in REQUIRED_FILES):
        return False
    return not_installed("xtts") is None


class XttsEngine:
    """Wraps `TTS.tts.models.xtts.Xtts`; 24 kHz output, streaming within each sentence."""

    name = "xtts"
    can_clone = True
    sample_rate = 24000
    default_voice = DEFAULT_VOICE

    def __init__(self, settings: Settings) -> None:
        self._model_dir = Path(settings.xtts_model_dir) if settings.xtts_model_dir else None
        self._voice = settings.tts_voice
        self._device = settings.tts_device
        self._threads = settings.tts_threads
        self._model: Any = None
        self._torch: Any = None
        self._languages: list[str] = []
        self._speakers: dict[str, Latents] = {}

    @property
    def languages(self) -> list[str]:
        return self._languages

    def load(self) -> None:
        if self._model_dir is None:
            raise EngineSetupError("XTTS_MODEL_DIR: required when TTS_ENGINE=xtts")
        missing = [name for name in REQUIRED_FILES if not (self._model_dir / name).is_file()]
        if missing:
            raise EngineUnavailable(
                f"XTTS_MODEL_DIR: {self._model_dir} lacks {', '.join(missing)} "
                "(it must hold the XTTS v2 config.json, model.pth, vocab.json, speakers_xtts.pth)"
            )
        try:
            # The xtts extra (torch, coqui-tts) is optional and absent from the dev environment.
            import torch  # pyright: ignore[reportMissingImports]
            from TTS.tts.configs.xtts_config import (  # pyright: ignore[reportMissingImports]
                XttsConfig,
            )
            from TTS.tts.models.xtts import Xtts  # pyright: ignore[reportMissingImports]
        except ImportError as error:
            raise missing_extra(self.name, error) from error

        torch.set_num_threads(self._threads)
        config = XttsConfig()
        config.load_json(str(self._model_dir / "config.json"))
        model = Xtts.init_from_config(config)
        model.load_checkpoint(config, checkpoint_dir=str(self._model_dir), use_deepspeed=False)
        model.to(torch.device(self._device))
        self.attach(model, torch, list(config.languages))

    def attach(self, model: Any, torch: Any, languages: list[str]) -> None:
        """Adopt a loaded model: read its studio speakers and languages.

        Split from `load()` so the wiring can be exercised with a stand-in model.
        """
        speakers = getattr(getattr(model, "speaker_manager", None), "speakers", None) or {}
        latents = {name: _latents_from_tensors(entry) for name, entry in speakers.items()}
        if self._voice is not None:
            if self._voice not in latents:
                raise unknown_voice(self.name, self._voice, sorted(latents))
            latents = {self._voice: latents[self._voice]}
        elif not latents:
            log.warning("no speakers_xtts.pth in XTTS_MODEL_DIR: /studio_speakers is empty")
        self._model, self._torch = model, torch
        self._languages = languages
        self._speakers = latents

    def voices(self) -> dict[str, Latents]:
        return self._speakers

    def resolve_voice(self, latents: Latents) -> Voice:
        # Any well-formed latents are a voice for XTTS (cloned speakers included); the name only
        # labels log lines.
        for name, known in self._speakers.items():
            if known.matches(latents):
                return Voice(name, latents)
        return Voice("custom", latents)

    def sentence_limit(self, language: str) -> int:
        limits = getattr(getattr(self._model, "tokenizer", None), "char_limits", None) or {}
        # coqui keys its limits by base code ("zh", not "zh-cn").
        base = language.split("-")[0]
        return int(limits.get(language, limits.get(base, DEFAULT_SENTENCE_CHARS)))

    def synthesize(
        self, text: str, voice: Voice, language: str, *, stream_chunk_size: int = 20
    ) -> Iterator[np.ndarray]:
        torch = self._torch
        embedding = torch.from_numpy(voice.latents.speaker_embedding).reshape(1, -1, 1)
        gpt_latent = torch.from_numpy(voice.latents.gpt_cond_latent).unsqueeze(0)
        # The server splits text into sentences itself, so the model's own splitting stays off.
        chunks = self._model.inference_stream(
            text,
            language,
            gpt_latent,
            embedding,
            stream_chunk_size=stream_chunk_size,
            enable_text_splitting=False,
        )
        for chunk in chunks:
            yield chunk.detach().to("cpu").float().numpy().reshape(-1)

    def clone(self, wav: bytes) -> Latents:
        # coqui-tts reads reference audio from a path.
        fd, path = tempfile.mkstemp(suffix=".wav")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(wav)
            gpt_latent, embedding = self._model.get_conditioning_latents(audio_path=[path])
        finally:
            os.unlink(path)
        return _latents_from_tensors(
            {"speaker_embedding": embedding, "gpt_cond_latent": gpt_latent}
        )


def _latents_from_tensors(entry: dict[str, Any]) -> Latents:
    """Studio-speaker or cloned tensors ((1, 512, 1) and (1, 32, 1024)) as Latents."""
    return Latents.from_lists(
        _to_numpy(entry["speaker_embedding"]), _to_numpy(entry["gpt_cond_latent"])
    )


def _to_numpy(tensor: Any) -> np.ndarray:
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().to("cpu").float().numpy()
    return np.asarray(tensor, dtype=np.float32)
