"""RNNoise for the VAD: the real library on a recording with room noise, and where it sits."""

from __future__ import annotations

import sys
import wave

import numpy as np
import pytest
from pipecat.processors.aggregators.llm_context import LLMContext

from bot.call_config import call_config
from bot.config import Settings
from bot.denoise import Denoiser, denoiser
from bot.models import SpeechModel
from bot.pipeline import context_aggregators, transport_params
from scripts.speech import _noise
from tests.support import FIXTURES

pytestmark = pytest.mark.unit

RATE = 16000


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


def noisy_recording() -> tuple[np.ndarray, int]:
    """A fixture question after 0.5 s of silence, room noise over all of it at 10 dB SNR, and
    where its speech starts."""
    with wave.open(str(FIXTURES / "questions" / "sky.wav")) as w:
        speech = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    lead = RATE // 2
    audio = np.concatenate([np.zeros(lead), speech])
    level = rms(speech[np.abs(speech) > 300]) / 10 ** (10 / 20)
    audio += level * _noise(len(audio), seed=3)
    return np.clip(audio, -32768, 32767).astype("<i2"), lead


def stream(denoise: Denoiser, pcm: np.ndarray, chunk: int = 320) -> np.ndarray:
    out = b"".join(denoise(pcm[i : i + chunk].tobytes()) for i in range(0, len(pcm), chunk))
    return np.frombuffer(out, dtype="<i2")


def test_room_noise_is_taken_out_of_the_silence_and_the_speech_is_kept():
    pcm, speech_start = noisy_recording()
    denoise = Denoiser(RATE)
    try:
        clean = stream(denoise, pcm)
    finally:
        denoise.close()
    # Streamed in 20 ms chunks, it keeps pace: only what the 48 kHz frames hold back is late.
    assert len(pcm) - len(clean) < 480 * 2 // 3
    quiet = slice(RATE // 10, speech_start - RATE // 10)  # the lead, once RNNoise has settled
    assert rms(clean[quiet]) < rms(pcm[quiet]) / 10, "at least 20 dB less noise where none spoke"
    loud = slice(speech_start, len(clean))
    assert rms(clean[loud]) > rms(pcm[loud]) / 2, "the speech is still there"


def test_a_closed_denoiser_says_so():
    denoise = Denoiser(RATE)
    denoise.close()
    with pytest.raises(RuntimeError, match="closed"):
        denoise(bytes(640))


def test_without_the_rnnoise_wheel_the_vad_hears_the_raw_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrnnoise.rnnoise", None)  # import fails as without it
    assert denoiser(RATE) is None


@pytest.mark.parametrize("rnnoise", [True, False])
def test_rnnoise_cleans_what_the_vad_hears_and_not_what_whisper_hears(rnnoise):
    # Whisper hears the transport's frames: no input filter may touch them.
    assert transport_params().audio_in_filter is None
    settings = Settings(_env_file=None, rnnoise=rnnoise)
    context = LLMContext([{"role": "system", "content": "You are a teacher."}])
    speech = SpeechModel("tiny.en", "cpu", None, 0)
    user, _ = context_aggregators(context, settings, call_config(settings), speech)
    vad = user._params.vad_analyzer
    vad.set_sample_rate(RATE)
    assert isinstance(vad._denoiser, Denoiser) is rnnoise
