"""RNNoise for what the VAD hears; Whisper and Smart Turn hear the caller's line as it is.

Measured on generated speech the tests do not use (40 questions, ten voices of espeak-ng, piper
and hibari, room noise mixed in; `scripts/noise_study.py`): RNNoise in front of Whisper tiny.en
doubled its word error rate on clean speech (10.5 → 22.3 %) and raised it at 5 dB SNR (23.2 →
32.7 %): Whisper was trained on noisy audio and copes with it, RNNoise's artefacts are new to it.
For the VAD it is a trade that pays in heavy noise: at 5 and 0 dB Silero heard fewer clips as
something other than one stretch of speech through RNNoise (5 → 3, 10 → 6 of 40), on clean
speech a few more (11 → 13). So the denoiser runs inside the VAD, in its own thread, on a copy
of the audio.
"""

from __future__ import annotations

import numpy as np
from loguru import logger

RNNOISE_RATE = 48000  # RNNoise's only rate: 480-sample (10 ms) frames


class Denoiser:
    """Streaming RNNoise for 16-bit mono PCM at `sample_rate`, resampled to 48 kHz and back.

    Not thread-safe: one per call, used from one thread (the VAD's).
    """

    def __init__(self, sample_rate: int):
        import soxr
        from pyrnnoise.rnnoise import FRAME_SIZE, create, destroy, process_mono_frame

        self._frame = FRAME_SIZE
        self._process, self._destroy = process_mono_frame, destroy  # bound once, used per frame
        self._state = create()
        self._up = soxr.ResampleStream(sample_rate, RNNOISE_RATE, 1, dtype="int16", quality="QQ")
        self._down = soxr.ResampleStream(RNNOISE_RATE, sample_rate, 1, dtype="int16", quality="QQ")
        self._pending = np.zeros(0, np.int16)

    def __call__(self, pcm: bytes) -> bytes:
        """Denoise a chunk; returns what is ready (a frame's worth is held back until whole)."""
        if self._state is None:
            raise RuntimeError("the denoiser is closed")
        upsampled = self._up.resample_chunk(np.frombuffer(pcm, dtype="<i2"))
        self._pending = np.concatenate([self._pending, upsampled])
        whole = len(self._pending) // self._frame * self._frame
        frames, self._pending = self._pending[:whole], self._pending[whole:]
        if not whole:
            return b""
        clean = [self._process(self._state, f)[0] for f in frames.reshape(-1, self._frame)]
        return self._down.resample_chunk(np.concatenate(clean)).astype("<i2").tobytes()

    def close(self) -> None:
        if self._state is not None:
            self._destroy(self._state)
            self._state = None


def denoiser(sample_rate: int) -> Denoiser | None:
    """A Denoiser, or None where pyrnnoise has no wheel or its library will not load."""
    try:
        return Denoiser(sample_rate)
    except (ImportError, OSError) as error:
        logger.info(f"RNNoise unavailable ({error.__class__.__name__}); the VAD hears the raw line")
        return None
