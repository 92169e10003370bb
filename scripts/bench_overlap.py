"""The benchmark's overlap mode: the caller speaks while the bot is answering.

    python scripts/bench_overlap.py [--url http://127.0.0.1:7860] [--transport websocket]
    make bench MODE=overlap [BENCH_URL=...] [TRANSPORT=websocket]

Over WebRTC as the page does (or over its WebSocket fallback), a call per trial (so that no
trial's conversation leads the next answer): each asks for a story (a long answer), and a second
or more into the answer's audio the caller says one clip over it:
- a **backchannel** ("Mm-hm.", "Uh-huh.", "Okay.", "I see."...), which must leave the bot
  talking: it counts as kept when the bot was not interrupted and did not answer it;
- an **interruption** (a new question, a correction, "wait"), which must silence the bot at
  once and be answered as one. Measured from the caller's side: from the first loud sample of
  its words to the last loud sample heard from the bot before a 0.4 s silence (both legs of the
  line included); a **false resumption** is an interruption after which the cut answer went on;
  the next answer is **to the interruption** when it names the interruption's subject.

The clips are made with speech engines other than the bot's own voice (espeak-ng, flite,
festival, piper), in voices not used for tuning, some with other people talking under them
(babble at 15 dB SNR). Results go
to `--out`: overlap.json and overlap.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.answers import words  # noqa: E402
from bot.latency import percentile  # noqa: E402
from scripts.bench import machine  # noqa: E402
from scripts.caller import Caller, Session, SocketCaller  # noqa: E402
from scripts.speech import ENGINES, babble  # noqa: E402

STORY = "Please tell me a long story about a dragon who loves to bake."
BACKCHANNELS = ("Mm-hm.", "Uh-huh.", "Okay.", "Yeah.", "Right.", "I see.", "Oh, okay.", "Sure.")
# What the caller says, and words one of which the next answer names if it answers it.
INTERRUPTIONS = (
    ("Wait, can you tell me about sharks instead?", ("shark", "sharks")),
    ("Sorry, what do bees make?", ("bee", "bees", "honey")),
    ("Stop. How many legs does a spider have?", ("spider", "spiders", "legs", "eight")),
    ("Hold on, why is the sky blue?", ("sky", "blue")),
    ("No, I meant the moon, not the sun.", ("moon",)),
    ("Excuse me, where do penguins live?", ("penguin", "penguins")),
)
VOICES = (
    ("espeak", "en-us+f3", 175),
    ("flite", "slt", 1.0),
    ("festival", "cmu_us_slt_arctic_hts", 1.0),
    ("piper", "joe", 1.1),
)
QUIET_SECS = 0.4  # the bot quiet this long: it has stopped
JUDGE_SECS = 4.0  # after a backchannel, time for a wrong turn to show


@dataclass
class Trial:
    kind: str  # backchannel | interruption
    said: str
    voice: str
    noise: str
    at_secs: float  # into the answer's audio
    interrupted: bool = False  # the bot said it was interrupted
    answered: bool = False  # it answered what the caller said as a turn
    silence_ms: float | None = None  # interruptions: the caller's first word to the bot's silence
    told_ms: float | None = None  # interruptions: its first word to the bot saying it was cut off
    longest_gap_ms: float | None = None  # backchannels: the bot's pause over it
    next_answer: str = ""
    to_the_interruption: bool = False
    error: str = ""

    @property
    def kept(self) -> bool:
        return not self.interrupted and not self.answered


def clip(text: str, voice: tuple[str, str, float], noisy: bool, seed: int) -> bytes:
    engine, name, speed = voice
    audio = ENGINES[engine](text, name, speed)
    loud = np.flatnonzero(np.abs(audio) > 0.02 * np.abs(audio).max())
    audio = audio[loud[0] : loud[-1] + 1] / np.abs(audio).max() * 0.5
    if noisy:
        audio = babble(audio, seed, 15.0)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def silenced_at(times: list[float]) -> float | None:
    """The last loud frame before the first stretch of `QUIET_SECS` without one."""
    for now, after in itertools.pairwise(times):
        if after - now > QUIET_SECS:
            return now
    return times[-1] if times else None


def caller_on(url: str, transport: str) -> Caller | SocketCaller:
    if transport == "websocket":
        return SocketCaller(url.replace("http", "ws", 1).rstrip("/") + "/ws")
    return Caller(url)


async def trial(url: str, transport: str, story: bytes, trial: Trial, pcm: bytes) -> Trial:
    caller = caller_on(url, transport)
    try:
        await caller.connect()
        await caller.wait_for(lambda: caller.of_type("bot-stopped-speaking"), 120, "the greeting")
        return await judge(caller, story, trial, pcm)
    except AssertionError as error:
        trial.error = str(error).split(";")[0]
        return trial
    finally:
        await caller.close()


async def judge(caller: Session, story: bytes, trial: Trial, pcm: bytes) -> Trial:
    await asyncio.sleep(0.5)
    starts = len(caller.of_type("bot-started-speaking"))
    caller.mic.say(story)
    await caller.wait_for(
        lambda: len(caller.of_type("bot-started-speaking")) > starts, 30, "the story"
    )
    await asyncio.sleep(trial.at_secs)
    if not caller.bot_speaking():
        trial.error = "the answer ended before the clip"
        return trial
    interrupted = len(caller.of_type("bot-interrupted"))
    latencies = len(caller.server_messages("latency"))
    outputs = len(caller.of_type("bot-output"))
    queued = time.monotonic()
    caller.mic.say(pcm)
    spoken = caller.mic.speech_start()
    ended = caller.mic.speech_end()
    await asyncio.sleep(max(0.0, ended - time.monotonic()) + JUDGE_SECS)
    trial.interrupted = len(caller.of_type("bot-interrupted")) > interrupted
    told = [
        at
        for at, m in zip(caller.arrivals, caller.messages, strict=True)
        if m.get("type") == "bot-interrupted" and at >= queued
    ]
    trial.told_ms = (told[0] - spoken) * 1000 if told else None
    trial.answered = len(caller.server_messages("latency")) > latencies
    times = list(caller.sounds_after(queued))
    if trial.kind == "backchannel":
        during = [t for t in times if spoken <= t <= ended + 1.5]
        gaps = [b - a for a, b in itertools.pairwise(during)]
        trial.longest_gap_ms = max(gaps, default=0.0) * 1000
        return trial
    silent = silenced_at([t for t in times if t >= spoken])
    trial.silence_ms = (silent - spoken) * 1000 if silent is not None else 0.0
    try:
        await caller.wait_for(
            lambda: trial.answered or caller.server_messages("latency")[latencies:],
            20,
            "the answer",
        )
        await caller.wait_for(lambda: not caller.bot_speaking(), 90, "the answer's end")
    except AssertionError as error:
        trial.error = str(error).split(";")[0]
    said = [
        m for m in caller.of_type("bot-output")[outputs:] if m["data"].get("spoken_status") != "new"
    ]
    trial.next_answer = " ".join(m["data"].get("text", "") for m in said).strip()
    return trial


def summarize(trials: list[Trial]) -> dict:
    backchannels = [t for t in trials if t.kind == "backchannel" and not t.error]
    interruptions = [t for t in trials if t.kind == "interruption" and not t.error]
    silences = [t.silence_ms for t in interruptions if t.interrupted and t.silence_ms is not None]
    pauses = [t.longest_gap_ms for t in backchannels if t.kept and t.longest_gap_ms is not None]

    def stats(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"median": None, "p95": None}
        return {"median": statistics.median(values), "p95": percentile(values, 95)}

    return {
        "backchannels": len(backchannels),
        "backchannels_kept": sum(t.kept for t in backchannels),
        "backchannel_pause_ms": stats(pauses),
        "interruptions": len(interruptions),
        "interruptions_obeyed": sum(t.interrupted for t in interruptions),
        "interruption_to_silence_ms": stats(silences),
        "false_resumptions": sum(not t.interrupted for t in interruptions),
        "answered_as_interruptions": sum(t.to_the_interruption for t in interruptions),
        "void": [f"{t.said} ({t.error})" for t in trials if t.error],
    }


def markdown(summary: dict) -> str:
    b, i = summary["backchannels"], summary["interruptions"]
    silence, pause = summary["interruption_to_silence_ms"], summary["backchannel_pause_ms"]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    return "\n".join(
        [
            "| measure | result |",
            "|---|---|",
            f"| backchannels that left the bot talking | {summary['backchannels_kept']} of {b} |",
            f"| the bot's pause over a backchannel, median / p95 | {ms(pause['median'])} / "
            f"{ms(pause['p95'])} ms |",
            f"| interruptions that stopped the bot | {summary['interruptions_obeyed']} of {i} |",
            f"| caller's first word to the bot's silence, median / p95 | {ms(silence['median'])}"
            f" / {ms(silence['p95'])} ms |",
            f"| false resumptions | {summary['false_resumptions']} |",
            f"| next answers to the interruption | {summary['answered_as_interruptions']} of {i} |",
        ]
    )


def planned(
    kind: str, said: str, voice: tuple[str, str, float], noisy: bool, at: float, seed: int
) -> tuple[Trial, bytes]:
    noise = "babble 15 dB" if noisy else "clean"
    return Trial(kind, said, f"{voice[0]} {voice[1]}", noise, at), clip(said, voice, noisy, seed)


async def run(url: str, transport: str, rounds: int) -> list[Trial]:
    plans: list[tuple[Trial, bytes, tuple[str, ...]]] = []
    for r in range(rounds):
        for n, said in enumerate(BACKCHANNELS):
            voice, noisy, at = VOICES[(n + r) % len(VOICES)], (n + r) % 3 == 2, 1.0 + (n % 4) * 0.8
            plans.append((*planned("backchannel", said, voice, noisy, at, seed=n), ()))
        for n, (said, subject) in enumerate(INTERRUPTIONS):
            voice, noisy = VOICES[(n + r + 1) % len(VOICES)], (n + r) % 3 == 1
            at = 1.2 + (n % 3) * 0.9
            plans.append((*planned("interruption", said, voice, noisy, at, seed=100 + n), subject))
    story = clip(STORY, ("espeak", "en-gb", 160), False, seed=0)
    trials: list[Trial] = []
    for made, pcm, subject in plans:
        done = await trial(url, transport, story, made, pcm)
        done.to_the_interruption = bool(set(subject) & set(words(done.next_answer)))
        trials.append(done)
        if done.error:
            verdict = done.error
        elif done.kind == "backchannel":
            verdict = "kept" if done.kept else "STOPPED"
        elif not done.interrupted:
            verdict = "NOT STOPPED"
        else:
            answered = "answered" if done.to_the_interruption else "NOT answered"
            told = "" if done.told_ms is None else f" (told at {done.told_ms:.0f} ms)"
            verdict = f"silent after {done.silence_ms:.0f} ms{told}, {answered} as an interruption"
        print(f"{done.kind:>12} {done.said!r:45} {done.voice:28} {done.noise:12} {verdict}")
    return trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="the bot (make run's)")
    parser.add_argument(
        "--transport", choices=["webrtc", "websocket"], default="webrtc", help="the caller's line"
    )
    parser.add_argument("--rounds", type=int, default=2, help="over the clips, voices moved on")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    trials = asyncio.run(run(args.url, args.transport, args.rounds))
    summary = summarize(trials)
    title = f"overlap: {len(trials)} trials over {args.transport}, {machine()}"
    table = markdown(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine(),
        "url": args.url,
        "transport": args.transport,
        "summary": summary,
        "trials": [asdict(t) for t in trials],
    }
    (args.out / "overlap.json").write_text(json.dumps(report, indent=2))
    (args.out / "overlap.md").write_text(f"{title}\n\n{table}\n")
    print(f"\n{title}\n\n{table}\nwritten to {args.out}/overlap.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
