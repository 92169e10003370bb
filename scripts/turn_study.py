"""When the turn policy would end each turn of the generated turn set, without a bot.

    python scripts/turn_study.py [--turns .cache/turns] [--out .cache/turn-study.json]
    python scripts/turn_study.py --tune     # search the thresholds on the tuning part

For every turn of `scripts/make_turns.py` it takes what the call would have (the call's own VAD,
RNNoise and noise floor included, fed the line in 20 ms frames; Whisper's transcript at each
pause, with the kit's decoder; the language model's reading of a statement's words; Smart Turn's
probability every 50 ms of silence), then replays `TurnPolicy.end_after` over each pause as the
turn strategy does (bot/turns.py), the caller's gaps between sentences remembered from pause to
pause. It reports per part (tune, dev, held-out):
cut-ins (the turn ended in a pause the caller went on after), stalls (more than 0.5 s from the
last word to the end of a finished turn), unanswered turns, and the VAD's end-of-speech error per
noise type. What the models make of each clip is cached (`--out`), so `--tune` replays many
policies quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import statistics
import sys
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.turn_policy import TurnPolicy  # noqa: E402
from bot.turns import turn_policy  # noqa: E402
from scripts.make_turns import OUT as TURNS_DIR  # noqa: E402
from scripts.make_turns import make  # noqa: E402

RATE = 16000
FRAME = RATE // 50  # 20 ms, as a transport delivers it
# Smart Turn is scored this often while the silence grows. A call scores it again as soon as the
# last score is in (`rescore_secs` after it), which takes 0.1-0.15 s on two cores.
STEP_SECS = 0.1
MAX_SILENCE_SECS = 1.6  # beyond every wait
STALL_SECS = 0.5  # a finished turn ending later than this after the last word stalls
PAD_SECS = MAX_SILENCE_SECS + 0.5
SETTINGS = Settings(_env_file=None)
PARTS = ("tune", "dev", "held-out")


@dataclass
class Pause:
    """A silence inside or after the caller's speech, as the VAD heard it."""

    start: float  # the VAD's first silent window, seconds into the clip
    end: float | None  # the VAD heard voice again (None: never, within the clip)
    stopped: bool  # the VAD called the speech over (only then can the turn end)
    room_db: float | None = None  # the noise floor the VAD heard, dBFS
    # Seconds into the pause at which the VAD heard what may be voice: no turn ends on those.
    stirs: list[float] = field(default_factory=list)
    heard: str = ""  # Whisper's transcript of the turn so far, at the pause's start
    # ... and heard again at the VAD's stop, where Whisper wrote no end to a sentence (bot/stt.py)
    final: str = ""
    scores: list[float] = field(default_factory=list)  # Smart Turn every STEP_SECS of silence
    sentence_end: float | None = None  # the language model's reading of `text`, where it counts

    @property
    def text(self) -> str:
        """What the turn's verdict reads."""
        return self.final or self.heard


@dataclass
class Clip:
    name: str
    part: str
    shape: str
    condition: str
    snr_db: float | None
    said: str
    speech_end: float  # where the words end, seconds into the clip
    pauses: list[Pause] = field(default_factory=list)


@dataclass
class Outcome:
    cut_in: bool = False  # the turn ended while the caller still had words to say
    endpointing: float | None = None  # last word → the turn's end (None: never ended)
    heard: str = ""


def read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


async def vad_pauses(pcm: np.ndarray) -> tuple[list[Pause], float]:
    """The pauses the call's VAD hears in `pcm`, as the turn strategy sees them: a pause
    begins at the first silent window."""
    from pipecat.audio.vad.vad_analyzer import VADState

    from bot.turns import call_vad

    vad = call_vad(SETTINGS, SETTINGS.vad_stop_secs)
    vad.set_sample_rate(RATE)
    pauses: list[Pause] = []
    current: Pause | None = None
    spoke = False
    for i in range(0, len(pcm) - FRAME + 1, FRAME):
        state = await vad.analyze_audio(pcm[i : i + FRAME].tobytes())
        now = (i + FRAME) / RATE
        if state is VADState.SPEAKING:
            spoke = True
            if current is not None:
                current.end = now - (SETTINGS.vad_start_secs if current.stopped else 0.0)
                current = None
        elif spoke and current is None and state in (VADState.STOPPING, VADState.QUIET):
            current = Pause(now - vad.pause_secs, None, False, vad.room_db)
            pauses.append(current)
        if current is not None and state is VADState.QUIET:
            current.stopped = True
        if current is not None and vad.stirring:
            current.stirs.append(round(now - current.start, 3))
    await vad.cleanup()
    return pauses, len(pcm) / RATE


def measure(entry: dict, folder: Path, decoder, model, sentences) -> Clip:
    """What the call would have at each of the clip's pauses. Before and after the clip the
    line is silent, as the benchmark's caller's is while the greeting plays and the bot answers.
    Times are from the clip's start."""
    silent = np.zeros(int(PAD_SECS * RATE), "<i2")
    pcm = np.concatenate([silent, read(folder / entry["file"]), silent])
    audio = pcm.astype(np.float32) / 32768
    pauses, length = asyncio.run(vad_pauses(pcm))
    pauses = [p for p in pauses if p.start >= PAD_SECS]
    for pause in pauses:
        pause.start -= PAD_SECS
        pause.end = None if pause.end is None else pause.end - PAD_SECS
    audio, length = audio[len(silent) :], length - PAD_SECS
    clip = Clip(
        entry["name"],
        entry["part"],
        entry["shape"],
        entry["condition"],
        entry.get("snr_db"),
        entry["text"],
        entry["speech_end_secs"],
    )
    early = turn_policy(SETTINGS).early_secs
    for pause in pauses:
        if not pause.stopped:
            continue  # too short for the turn to end in it
        until = int((pause.start + early) * RATE)
        segments, _ = decoder.transcribe(audio[:until], language="en")
        pause.heard = " ".join(s.text for s in segments).strip()
        if not pause.heard.endswith((".", "?", "!")):
            stopped = int((pause.start + SETTINGS.vad_stop_secs) * RATE)
            segments, _ = decoder.transcribe(audio[:stopped], language="en")
            pause.final = " ".join(s.text for s in segments).strip()
        if TurnPolicy().reads(pause.text):
            pause.sentence_end = round(sentences.probability(pause.text), 4)
        if not TurnPolicy().needs_model(pause.text):
            clip.pauses.append(pause)
            continue  # the words decide; Smart Turn is not asked
        last = min(length, pause.end if pause.end is not None else length)
        steps = int(min(MAX_SILENCE_SECS, last - pause.start) / STEP_SECS)
        pause.scores = [
            round(
                model.probability(audio[: int((pause.start + k * STEP_SECS) * RATE)][-8 * RATE :]),
                3,
            )
            for k in range(1, steps + 1)
        ]
        clip.pauses.append(pause)
    return clip


def replay(policy: TurnPolicy, clip: Clip) -> Outcome:
    """When the strategy would end the turn: at the first pause, and the first moment in it,
    where the silence heard reaches `end_after` (the caller's gaps remembered meanwhile)."""
    gaps: list[float] = []
    stop = SETTINGS.vad_stop_secs
    for pause in clip.pauses:
        text = pause.text
        needs_model = policy.needs_model(text)
        length = (pause.end - pause.start) if pause.end is not None else MAX_SILENCE_SECS
        stirs = {round(t / 0.02) for t in pause.stirs}  # in frames of 20 ms
        silence, probability = stop, None
        while silence <= length and text:
            step = int(silence / STEP_SECS + 1e-6) - 1  # the latest score in at this silence
            if needs_model and step >= len(pause.scores):
                break
            evidence = (gaps, pause.room_db, pause.sentence_end)
            # Smart Turn is scored again only while a surer score could end the turn sooner.
            if needs_model and (
                probability is None or policy.may_shorten(text, probability, *evidence)
            ):
                probability = pause.scores[step]
            wait = policy.end_after(text, probability, *evidence)
            due = silence >= wait - 0.02
            if due and round(silence / 0.02) not in stirs:
                ended = pause.start + silence
                if ended < clip.speech_end - 0.05:
                    return Outcome(cut_in=True, heard=text)
                return Outcome(endpointing=ended - clip.speech_end, heard=text)
            silence = round(silence + 0.02, 3)  # a frame at a time, as the call hears it
        kind = policy.kind(text, pause.sentence_end)
        if pause.end is not None and kind.value in ("asked", "request", "said", "bare"):
            gaps.append(length)
    return Outcome(heard=clip.pauses[-1].text if clip.pauses else "")


def vad_end_error(clip: Clip) -> float | None:
    """The VAD's end of speech (the last pause's start) minus where the words really end."""
    final = [p for p in clip.pauses if p.end is None]
    return final[-1].start - clip.speech_end if final else None


def report(policy: TurnPolicy, clips: list[Clip], part: str) -> dict:
    chosen = [c for c in clips if c.part == part]
    outcomes = {c.name: replay(policy, c) for c in chosen}
    finished = [o.endpointing for o in outcomes.values() if o.endpointing is not None]
    by_shape: dict[str, dict] = {}
    for clip in chosen:
        row = by_shape.setdefault(clip.shape, {"turns": 0, "cut_ins": 0, "stalls": 0})
        o = outcomes[clip.name]
        row["turns"] += 1
        row["cut_ins"] += o.cut_in
        row["stalls"] += o.endpointing is not None and o.endpointing > STALL_SECS
    vad: dict[str, list[float]] = {}
    for clip in chosen:
        condition = clip.condition + (f" {clip.snr_db:g} dB" if clip.snr_db else "")
        error = vad_end_error(clip)
        vad.setdefault(condition, []).append(error if error is not None else float("inf"))
    return {
        "turns": len(chosen),
        "cut_ins": sorted(n for n, o in outcomes.items() if o.cut_in),
        "stalls": sorted(
            n
            for n, o in outcomes.items()
            if o.endpointing is not None and o.endpointing > STALL_SECS
        ),
        "unanswered": sorted(
            n for n, o in outcomes.items() if not o.cut_in and o.endpointing is None
        ),
        "endpointing_median": statistics.median(finished) if finished else None,
        "endpointing_max": max(finished) if finished else None,
        "by_shape": by_shape,
        "vad_end_error": {
            k: {
                "median": statistics.median(v),
                "max": max(v),
                "never": sum(e == float("inf") for e in v),
            }
            for k, v in sorted(vad.items())
        },
        "outcomes": {n: asdict(o) for n, o in outcomes.items()},
    }


# The thresholds `--tune` searches (the rest stay at TurnPolicy's defaults).
GRID = {
    "question_wait": (0.3, 0.35, 0.4),
    "statement_wait": (0.35, 0.4, 0.45),
    "said_probability": (0.1, 0.2, 0.3),
    "bare_probability": (0.3, 0.4, 0.6),
    "unsure_wait": (0.6, 0.7, 0.8),
    "gap_margin": (0.0, 0.05, 0.1),
    "noisy_room_db": (-50.0, -40.0, 0.0),
    "sentence_end_probability": (0.01, 0.05, 0.1),
}
# What the kit's voice-to-voice target (a 0.45 s median) leaves for the median endpointing,
# with the answer's first audio ready and held by then.
ENDPOINTING_BUDGET_SECS = 0.42


def cost(result: dict) -> float:
    """Cut-ins matter most, then stalls and unanswered turns, then the median wait beyond what
    the latency target allows."""
    median = result["endpointing_median"] or 0
    return (
        10 * len(result["cut_ins"])
        + 3 * len(result["stalls"])
        + 3 * len(result["unanswered"])
        + 10 * max(0.0, median - ENDPOINTING_BUDGET_SECS)
        + median
    )


def tune(clips: list[Clip]) -> TurnPolicy:
    best, best_cost = TurnPolicy(), float("inf")
    for values in itertools.product(*GRID.values()):
        policy = dataclasses.replace(TurnPolicy(), **dict(zip(GRID, values, strict=True)))
        c = cost(report(policy, clips, "tune"))
        if c < best_cost:
            best, best_cost = policy, c
    return best


def load_clips(path: Path) -> list[Clip]:
    rows = json.loads(path.read_text())
    return [Clip(**{**r, "pauses": [Pause(**p) for p in r["pauses"]]}) for r in rows]


def study(folder: Path) -> list[Clip]:
    from faster_whisper import WhisperModel

    from bot.models import bundled_whisper_path
    from bot.sentence_end import load_sentence_end_model
    from bot.stt import TurnDecoder
    from bot.turns import SmartTurnModel

    entries = make(folder)
    whisper = WhisperModel(bundled_whisper_path(), device="cpu", compute_type="int8")
    decoder, model = TurnDecoder(whisper), SmartTurnModel()
    sentences = load_sentence_end_model()
    if sentences is None:
        raise SystemExit("the turn study needs the sentence-end model: uv sync --extra bot")
    clips = []
    for i, entry in enumerate(entries, 1):
        clips.append(measure(entry, folder, decoder, model, sentences))
        print(f"{i}/{len(entries)} {entry['name']}", file=sys.stderr, flush=True)
    return clips


def summary_lines(result: dict, part: str) -> list[str]:
    ms = lambda v: "–" if v is None else f"{v * 1000:.0f} ms"  # noqa: E731
    lines = [
        f"{part}: {result['turns']} turns; cut-ins {len(result['cut_ins'])} {result['cut_ins']}; "
        f"stalls {len(result['stalls'])} {result['stalls']}; unanswered "
        f"{len(result['unanswered'])} {result['unanswered']}; endpointing median "
        f"{ms(result['endpointing_median'])}, max {ms(result['endpointing_max'])}",
        "  VAD end of speech minus the words' end, by condition (median / max, never stopped):",
    ]
    for condition, e in result["vad_end_error"].items():
        shown = ms(e["median"]) if e["median"] != float("inf") else "never"
        worst = ms(e["max"]) if e["max"] != float("inf") else "never"
        lines.append(f"    {condition:>14}: {shown} / {worst}, {e['never']}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=Path, default=TURNS_DIR)
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "turn-study.json")
    parser.add_argument("--cached", action="store_true", help="reuse --out's measurements")
    parser.add_argument("--tune", action="store_true", help="search GRID on the tuning part")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="to report")
    args = parser.parse_args()
    if args.cached:
        clips = load_clips(args.out)
    else:
        clips = study(args.turns)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([asdict(c) for c in clips], indent=1))
    policy = tune(clips) if args.tune else TurnPolicy()
    if args.tune:
        changed = {k: getattr(policy, k) for k in GRID}
        print(f"best on the tuning part: {changed}")
    for part in args.parts:
        print("\n".join(summary_lines(report(policy, clips, part), part)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
