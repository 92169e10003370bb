"""How the turn policy does on speech neither it nor the tests were tuned on.

    python scripts/turn_study.py [--out .cache/turn-study.json]

Speaks complete questions, and sentences cut off mid-way (at a word boundary of the whole
sentence, so the voice carries on as a person's does when they pause to think), in several
voices of espeak-ng, piper and hibari. For each clip it takes what the kit would have at the
caller's pause: Whisper's early transcript (the kit's decoder, at TURN_EARLY_SECS of silence)
and Smart Turn's probability as the silence grows. It then plays `TurnPolicy` over that timeline
as the turn strategy does (a decision at the VAD's stop, the turn scored again every
`rescore_secs`) and reports when each turn would end: a complete question should end within
0.5 s of silence, a sentence cut off should not end within a 0.75 s pause.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.turns import TurnPolicy, cue  # noqa: E402
from scripts.make_questions import ENGINES, PAUSE_SECS, RATE, _trim  # noqa: E402

# The kit's defaults: the VAD's stop, and the pause that starts the early transcript.
VAD_STOP_SECS = Settings.model_fields["vad_stop_secs"].default
EARLY_SECS = Settings.model_fields["turn_early_secs"].default
STEP_SECS = 0.05
SCORED_SECS = 2.0  # silence scored after the last word (beyond every wait)

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
# (sentence, words said before the pause)
CUT = [
    ("When I went to the park I saw a big brown duck.", 6),
    ("I was wondering, why does the moon change its shape?", 3),
    ("My favourite animal is the tiger because it is strong.", 5),
    ("So my question is, how do trains go so fast?", 4),
    ("If a cat and a dog had a race, who would win?", 5),
    ("Well, I think that the ocean is very deep.", 3),
    ("Can you tell me how many stars there are?", 4),
    ("The thing is, my brother says dinosaurs are still alive.", 3),
    ("Yesterday my teacher said that plants eat sunlight.", 5),
    ("Do you know why the sky gets dark at night?", 4),
    ("I have a question about how volcanoes work.", 5),
    ("Could you explain how a rainbow is made?", 3),
    ("What I want to know is why snow is white.", 6),
    ("Um, so, like, what do bears eat in winter?", 3),
    ("And then my friend asked me what a comet is.", 5),
    ("How come when it rains the streets get shiny?", 4),
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


@dataclass
class Clip:
    kind: str  # complete | cut
    said: str
    engine: str
    voice: str
    speed: float
    heard: str = ""
    probabilities: tuple[float, ...] = ()  # Smart Turn after STEP_SECS, 2 STEP_SECS, ... silence
    ends_after: float | None = None  # seconds of silence before the turn would end

    @property
    def cue(self) -> str:
        return cue(self.heard).value


def turn_end(policy: TurnPolicy, heard: str, probabilities: tuple[float, ...]) -> float:
    """When the turn strategy would end the turn, in seconds of silence after the last word."""

    def at(secs: float) -> float:
        return probabilities[round(secs / STEP_SECS) - 1]

    scored = policy.needs_model(heard)
    wait = policy.wait(heard, at(VAD_STOP_SECS) if scored else None)
    secs = VAD_STOP_SECS
    while scored and secs + STEP_SECS < VAD_STOP_SECS + wait:
        secs = round(secs + STEP_SECS, 2)
        shorter = policy.wait(heard, at(secs))
        if shorter < wait:  # a surer verdict shortens the wait, counted from the decision
            return max(secs, VAD_STOP_SECS + shorter)
    return VAD_STOP_SECS + wait


def listen(clip: Clip, speech: np.ndarray, decoder, model) -> Clip:
    """Fill in what the kit would have heard of `speech` followed by silence."""
    lead = np.zeros(int(0.3 * RATE), np.float32)
    audio = np.concatenate([lead, speech, np.zeros(int((SCORED_SECS + 0.1) * RATE), np.float32)])
    end = len(lead) + len(speech)
    segments, _ = decoder.transcribe(audio[: end + int(EARLY_SECS * RATE)], language="en")
    clip.heard = " ".join(s.text for s in segments).strip()
    steps = round(SCORED_SECS / STEP_SECS)
    clip.probabilities = tuple(
        round(model.probability(audio[: end + int(i * STEP_SECS * RATE)][-8 * RATE :]), 3)
        for i in range(1, steps + 1)
    )
    return clip


def cut_off(speech: np.ndarray, words: list, keep: int) -> np.ndarray:
    """`speech` up to the quietest point between word `keep` - 1 and word `keep`."""
    first, last = int(words[keep - 1].end * RATE), int(words[keep].start * RATE)
    level = np.convolve(np.abs(speech), np.ones(160) / 160, "same")
    low, high = max(0, first - RATE // 10), min(len(speech), max(last, first + 1) + RATE // 20)
    return _trim(speech[: low + int(np.argmin(level[low:high]))])


def study() -> list[Clip]:
    from faster_whisper import WhisperModel

    from bot.models import bundled_whisper_path
    from bot.stt import TurnDecoder
    from bot.turns import SmartTurnModel

    whisper = WhisperModel(bundled_whisper_path(), device="cpu", compute_type="int8")
    decoder, model = TurnDecoder(whisper), SmartTurnModel()
    clips = []
    for i, text in enumerate(COMPLETE):
        for engine, voice, speed in (VOICES[i % len(VOICES)], VOICES[(i + 4) % len(VOICES)]):
            speech = _trim(ENGINES[engine](text, voice, speed))
            clips.append(
                listen(Clip("complete", text, engine, voice, speed), speech, decoder, model)
            )
    for i, (text, keep) in enumerate(CUT):
        for offset in (0, 3, 7):
            engine, voice, speed = VOICES[(i + offset) % len(VOICES)]
            speech = _trim(ENGINES[engine](text, voice, speed))
            segments, _ = whisper.transcribe(speech, language="en", word_timestamps=True)
            words = [w for s in segments for w in s.words]
            if len(words) <= keep:  # misheard too badly to find the pause
                continue
            said = " ".join(w.word.strip() for w in words[:keep])
            clip = Clip("cut", said, engine, voice, speed)
            clips.append(listen(clip, cut_off(speech, words, keep), decoder, model))
    return clips


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "turn-study.json")
    args = parser.parse_args()
    policy = TurnPolicy()
    clips = study()
    for clip in clips:
        clip.ends_after = turn_end(policy, clip.heard, clip.probabilities)
    complete = [c for c in clips if c.kind == "complete"]
    cut = [c for c in clips if c.kind == "cut"]
    slow = [c for c in complete if c.ends_after > 0.5]
    cut_in = [c for c in cut if c.ends_after < PAUSE_SECS]
    print(
        f"complete questions ending after more than 0.5 s of silence: {len(slow)}/{len(complete)}"
    )
    for c in slow:
        print(f"  {c.ends_after:.2f}s {c.cue:8} {c.voice:16} {c.heard!r}")
    print(f"sentences cut off that a {PAUSE_SECS} s pause would end: {len(cut_in)}/{len(cut)}")
    for c in cut_in:
        print(f"  {c.ends_after:.2f}s {c.cue:8} {c.voice:16} {c.heard!r} (said {c.said!r})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([asdict(c) | {"cue": c.cue} for c in clips], indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
