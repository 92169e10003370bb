"""Where RNNoise helps and where it hurts: Whisper's words and the VAD's turns, with and without.

    python scripts/noise_study.py [--out .cache/noise-study.json]

Speaks 20 complete questions in two voices each, from
espeak-ng, piper and hibari, adds room noise (pink-ish, `scripts/speech.py`) at several
signal-to-noise ratios, and hears each clip two ways: as it is, and through the kit's RNNoise
(`bot/denoise.py`). For each it reports
- Whisper's word error rate (the kit's decoder, on the clip up to 30 ms after the last word, as
  the early transcript has it);
- the VAD's turns (the kit's Silero settings): clips heard as anything but one stretch of speech,
  and how long after the last word the VAD called speech over.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from scripts.speech import ENGINES, RATE, _noise, _trim  # noqa: E402

SNRS = (None, 10, 5, 0)  # dB; None: clean
EARLY_SECS = Settings.model_fields["turn_early_secs"].default
COMPLETE = [
    *("What is the capital of Italy?", "How do airplanes stay up in the sky?"),
    *("Why is grass green?", "Can you count to five for me?", "What sound does a cow make?"),
    *("How many days are in a week?", "Tell me about the planet Mars."),
    *("What is two plus two?", "Where does rain come from?", "Why do birds sing?"),
    *("What is the biggest dog in the world?", "Do fish ever sleep?", "What is nine times six?"),
    *("Who invented the light bulb?", "How hot is the sun?", "I like turtles."),
    *("Please tell me a story about a dragon.", "My dog is called Max.", "Can elephants swim?"),
    "What color is a giraffe's tongue?",
]
VOICES = [
    ("espeak", "en-us+f2", 150),
    ("espeak", "en-gb-x-rp", 175),
    ("espeak", "en-us+m5", 130),
    ("espeak", "en-westmidlands", 165),
    ("espeak", "en-scottish", 190),
    ("piper", "joe", 0.85),
    ("piper", "joe", 1.2),
    ("hibari", "heart", 0.9),
    ("hibari", "heart", 1.15),
    ("espeak", "en-us", 160),
]
LEAD_SECS, TAIL_SECS = 1.0, 2.0
_NUMBERS = {"2": "two", "5": "five", "6": "six", "9": "nine"}


def words(text: str) -> list[str]:
    text = re.sub(r"\d", lambda m: f" {_NUMBERS.get(m[0], m[0])} ", text.lower())
    return re.findall(r"[a-z']+", text)


def errors(said: str, heard: str) -> tuple[int, int]:
    """Word-level edit distance between `said` and `heard`, and the number of words said."""
    ref, hyp = words(said), words(heard)
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        prev, row = row, [i] + [0] * len(hyp)
        for j, other in enumerate(hyp, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (word != other))
    return row[-1], len(ref)


def noisy(speech: np.ndarray, snr_db: float | None, seed: int) -> np.ndarray:
    """`speech` between silences, at -6 dBFS peak, with room noise at `snr_db` over it all."""
    audio = np.concatenate(
        [np.zeros(int(LEAD_SECS * RATE)), speech, np.zeros(int(TAIL_SECS * RATE))]
    ).astype(np.float32)
    audio *= 0.5 / (np.abs(audio).max() + 1e-9)
    if snr_db is not None:
        level = np.sqrt(np.mean(audio[np.abs(audio) > 0.01] ** 2)) / 10 ** (snr_db / 20)
        audio = audio + level * _noise(len(audio), seed)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2")


def denoised(pcm: np.ndarray) -> np.ndarray:
    from bot.denoise import Denoiser

    denoiser = Denoiser(RATE)
    try:
        out = b"".join(denoiser(pcm[i : i + 320].tobytes()) for i in range(0, len(pcm), 320))
    finally:
        denoiser.close()
    return np.frombuffer(out, dtype="<i2")


async def vad_turns(pcm: np.ndarray, settings: Settings) -> tuple[int, float | None]:
    """The stretches of speech a call's VAD (`settings`: RNNoise or not) hears in `pcm`, and
    when it called the last over."""
    from pipecat.audio.vad.vad_analyzer import VADState

    from bot.turns import call_vad

    vad = call_vad(settings, settings.vad_stop_secs)
    vad.set_sample_rate(RATE)
    starts, stopped, state = 0, None, VADState.QUIET
    for i in range(0, len(pcm) - 320 + 1, 320):
        new = await vad.analyze_audio(pcm[i : i + 320].tobytes())
        if new is VADState.SPEAKING and state is not VADState.SPEAKING:
            starts += 1
        if new is VADState.QUIET and state is not VADState.QUIET:
            stopped = (i + 320) / RATE
        state = new
    await vad.cleanup()
    return starts, stopped


def study(settings: Settings) -> list[dict]:
    from faster_whisper import WhisperModel

    from bot.models import bundled_whisper_path
    from bot.stt import TurnDecoder

    whisper = WhisperModel(bundled_whisper_path(), device="cpu", compute_type="int8")
    decoder = TurnDecoder(whisper)
    rows = []
    for i, text in enumerate(COMPLETE):
        for offset in (1, 5):
            engine, voice, speed = VOICES[(i + offset) % len(VOICES)]
            speech = _trim(ENGINES[engine](text, voice, speed))
            end = int(LEAD_SECS * RATE) + len(speech)
            for snr in SNRS:
                raw = noisy(speech, snr, seed=i * 10 + offset)
                for heard_as, pcm in (("raw", raw), ("rnnoise", denoised(raw))):
                    clip = pcm[: end + int(EARLY_SECS * RATE)].astype(np.float32) / 32768
                    segments, _ = decoder.transcribe(clip, language="en")
                    heard = " ".join(s.text for s in segments).strip()
                    # The VAD always gets the raw line; with RNNOISE it denoises it itself.
                    vad_settings = settings.model_copy(update={"rnnoise": heard_as == "rnnoise"})
                    starts, stopped = asyncio.run(vad_turns(raw, vad_settings))
                    wrong, count = errors(text, heard)
                    rows.append(
                        {
                            "said": text,
                            "voice": f"{engine}/{voice}/{speed}",
                            "snr_db": snr,
                            "heard_as": heard_as,
                            "heard": heard,
                            "word_errors": wrong,
                            "words": count,
                            "vad_turns": starts,
                            "vad_stop_after": None if stopped is None else stopped - end / RATE,
                        }
                    )
    return rows


def summary(rows: list[dict]) -> list[str]:
    lines = ["| SNR | heard | Whisper WER | clips not one VAD turn | VAD stop after last word |"]
    lines.append("|---|---|---|---|---|")
    for snr in SNRS:
        for heard_as in ("raw", "rnnoise"):
            some = [r for r in rows if r["snr_db"] == snr and r["heard_as"] == heard_as]
            wer = sum(r["word_errors"] for r in some) / sum(r["words"] for r in some)
            split = sum(r["vad_turns"] != 1 for r in some)
            lags = [r["vad_stop_after"] for r in some if r["vad_stop_after"] is not None]
            lag = f"{np.median(lags):.2f} s median" if lags else "-"
            shown = "clean" if snr is None else f"{snr} dB"
            lines.append(
                f"| {shown} | {heard_as} | {100 * wer:.1f} % | {split}/{len(some)} | {lag} |"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "noise-study.json")
    args = parser.parse_args()
    rows = study(Settings(_env_file=None))
    print("\n".join(summary(rows)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
