"""What a call costs the bot's process in CPU: connected and silent, the caller speaking, the bot
speaking.

    python scripts/call_cost.py [--calls 4] [--idle-secs 20] [--turns 8] [--room-db -50]
                                                            (make call-cost [CALLS=N] [ROOM_DB=dB])

Starts `make run`'s stack on the bundled model, finds the bot's process and samples its CPU time
(`/proc/PID/stat`: all its threads, Whisper's and Smart Turn's included; the LLM and TTS servers
are processes of their own, not counted) every 100 ms. First with no call, then with `--calls`
callers (aiortc, as the page) connected and silent, then with the first of them asking held-out
turns one at a time while the others stay silent. Each interval goes to what was happening:
"listening" while a caller's words play, "talking" while the bot's voice reaches the caller,
"idle" otherwise. A call's cost is the process's rate above its rate with no call (divided by the
calls, for the idle phase), in per cent of one core. The callers' lines are digital silence
between words (a browser's noise suppression, a muted microphone), or, with `--room-db`, steady
room noise at that level. Results: the table, and `bench-results/call-cost.json` with the
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import Settings as BotSettings  # noqa: E402
from scripts.bench import TURNS_DIR, ask, machine, make, resolve_llm, stack_with  # noqa: E402
from scripts.caller import Caller  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_SECS = 0.1


def bot_pid(launcher: int) -> int:
    """The `python -m bot` process among the launcher's children."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == launcher and cmdline[1:3] == [b"-m", b"bot"]:
            return int(entry.name)
    raise SystemExit("no bot process under the stack's launcher")


def cpu_secs(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime, all threads


class Sampler(threading.Thread):
    """(monotonic time, CPU seconds) of `pid` every SAMPLE_SECS, in a thread of its own."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_SECS):
            self.samples.append((time.monotonic(), cpu_secs(self.pid)))

    def stop(self) -> None:
        self._done.set()
        self.join()

    def rate(self, spans: list[tuple[float, float]]) -> tuple[float, float]:
        """Per cent of a core over the samples inside `spans`, and the seconds they cover."""
        busy = secs = 0.0
        for (t0, c0), (t1, c1) in zip(self.samples, self.samples[1:], strict=False):
            if any(start <= t0 and t1 <= end for start, end in spans):
                busy, secs = busy + c1 - c0, secs + t1 - t0
        return (100 * busy / secs if secs else float("nan")), secs


async def measure(
    url: str,
    calls: int,
    idle_secs: float,
    questions: list,
    folder: Path,
    room_db: float | None = None,
) -> dict[str, list[tuple[float, float]]]:
    """What happened when: (start, end) spans of each phase."""
    phases: dict[str, list[tuple[float, float]]] = {"none": [], "idle": [], "listening": []}
    phases["talking"] = []
    start = time.monotonic()
    await asyncio.sleep(idle_secs / 2)
    phases["none"].append((start, time.monotonic()))
    callers = [Caller(url) for _ in range(calls)]
    try:
        for caller in callers:
            if room_db is not None:
                caller.mic.hiss(room_db)
            await caller.connect({"profile": "kit"})
        for caller in callers:
            await caller.wait_for(
                lambda c=caller: c.of_type("bot-stopped-speaking"), 120, "greeting"
            )
        await asyncio.sleep(1.0)
        start = time.monotonic()
        await asyncio.sleep(idle_secs)
        phases["idle"].append((start, time.monotonic()))
        first = callers[0]
        for question in questions:
            asked = time.monotonic()
            turn = await ask(first, question, folder)
            spoke = (asked, first.mic.speech_end())
            phases["listening"].append(spoke)
            sounds = list(first.sounds_after(spoke[1]))
            if sounds and not turn.error:
                phases["talking"].append((sounds[0], sounds[-1]))
    finally:
        await asyncio.gather(*(caller.close() for caller in callers))
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--calls", type=int, default=1, help="callers connected and silent")
    parser.add_argument("--idle-secs", type=float, default=20.0)
    parser.add_argument("--turns", type=int, default=8, help="held-out turns the first caller asks")
    parser.add_argument("--questions", type=Path, default=TURNS_DIR, help="the turn set's folder")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="ask these turns instead")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument(
        "--room-db", type=float, help="room noise on the callers' lines, dBFS (default: silence)"
    )
    args = parser.parse_args()
    chosen = [q for q in make(args.questions, args.only) if args.only or q["part"] == "held-out"]
    questions = chosen[: args.turns]
    # The stack it starts takes the calls it is given.
    os.environ["BOT_MAX_CALLS"] = str(max(BotSettings().bot_max_calls, args.calls))
    with stack_with(resolve_llm("bundled"), args.url) as launcher:
        sampler = Sampler(bot_pid(launcher))
        sampler.start()
        try:
            phases = asyncio.run(
                measure(
                    args.url, args.calls, args.idle_secs, questions, args.questions, args.room_db
                )
            )
        finally:
            sampler.stop()
    base, _ = sampler.rate(phases["none"])
    result = {
        "machine": machine(),
        "calls": args.calls,
        "room_db": args.room_db,
        "no_call_pct": round(base, 1),
    }
    idle, _ = sampler.rate(phases["idle"])
    idle_call = (idle - base) / args.calls
    for phase in ("idle", "listening", "talking"):
        pct, secs = sampler.rate(phases[phase])
        # Listening and talking are the first call's; the others stay idle meanwhile.
        own = idle_call if phase == "idle" else pct - base - (args.calls - 1) * idle_call
        result[phase] = {
            "process_pct": round(pct, 1),
            "per_call_pct": round(own, 1),
            "secs": round(secs, 1),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "call-cost.json").write_text(json.dumps(result, indent=2))
    line = "silent between words" if args.room_db is None else f"room noise at {args.room_db} dBFS"
    print(f"\n{machine()}; the callers' lines {line}")
    print(f"the bot's process, per cent of one core (no call: {base:.1f} %)\n")
    print("| phase | process | per call | measured over |\n|---|---|---|---|")
    for phase in ("idle", "listening", "talking"):
        r = result[phase]
        print(f"| {phase} | {r['process_pct']} % | {r['per_call_pct']} % | {r['secs']} s |")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
