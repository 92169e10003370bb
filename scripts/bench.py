"""Part 2, the benchmark: how fast is the self-hosted pipeline, stage by stage?

    python scripts/bench.py [--url http://127.0.0.1:7860] [--part held-out] [--compare seed]
    make bench [BENCH_URL=...] [PART=held-out|dev|tune|all] [COMPARE=seed]

Speaks the turn set (`scripts/make_turns.py`: six speech engines, many voices and speeds;
questions, requests, statements, two-sentence turns, phrases left unfinished over a pause;
babble, music and fan noise, reverb, a phone line, quiet callers) into any running stack
(`make run`, Compose, a Modal URL) over WebRTC, as the page does, one turn at a time at
real-time pace. By default only its held-out part, which the turn policy was neither tuned nor
developed on.

Besides latency it judges turn taking, from the caller's side: a **cut-in** is bot audio begun
while the caller still had words to say; a **stall** is a finished turn whose endpointing (the
caller's last word to the bot's decision), or a wait no stage accounts for, took more than
0.5 s; an **unanswered** turn got no answer at all.

Each turn is measured twice:
- by the bot (Pipecat's UserBotLatencyObserver, folded into bot/latency.py's stages): from the
  moment the caller really stopped speaking to the first audio the bot sends;
- by the caller: the end of its words (where the recording's tail begins) to the first loud
  sample received back (both WebRTC legs and the jitter buffers; no playout).

`--calls N` measures load instead: N calls at once, each asking its own share of the questions
one at a time, their first questions `--stagger` seconds apart (a call the bot refuses is
reported as such).

`--compare seed` opens a second call with the seed's configuration (bot/call_config.py) and asks it
the same questions, interleaved with the kit's, then prints each stage's ratio. Results go to
`--out` (bench-results/): bench.json, bench.md and bench.png (stacked bars per configuration).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.answers import words  # noqa: E402
from bot.latency import STAGES, percentile  # noqa: E402
from scripts.caller import MIC_RATE, Caller, read_wav  # noqa: E402
from scripts.make_turns import OUT as TURNS_DIR  # noqa: E402
from scripts.make_turns import make  # noqa: E402

LOOP_NGRAM = 4
STALL_MS = 500  # a wait beyond this on a finished turn is a stall (`Turn.stalled`)
ANSWER_SECS = 20  # a turn whose answer has not begun this long after its last word is unanswered
QUIET_SECS = 1.5  # the bot quiet this long after an answer: the turn is over
HOLE_MS = 500  # a silence longer than this inside an answer is a hole


@dataclass
class Turn:
    question: str
    tags: list[str]
    shape: str = ""
    condition: str = ""
    total_ms: float | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)
    caller_ms: float | None = None
    heard: str = ""  # what the bot transcribed
    answer: str = ""  # what the bot said
    turns: int = 0  # latency records for this one question (1 unless it was cut)
    cut: bool = False  # the bot spoke before the caller had finished (a cut-in)
    longest_gap_ms: float | None = None  # the longest silence inside the answer, caller side
    error: str = ""

    @property
    def stalled(self) -> bool:
        """Answered late: a long endpointing, or as long a wait that no stage accounts for (a
        turn the kit's strategy never ended, ended by Pipecat's 5 s user-turn timeout)."""
        waits = (self.stages_ms.get("endpointing", 0.0), self.stages_ms.get("rest", 0.0))
        return not self.cut and max(waits) > STALL_MS

    @property
    def unanswered(self) -> bool:
        return self.total_ms is None and not self.cut

    @property
    def answer_words(self) -> int:
        return len(words(self.answer))  # as the answer guard counts them

    @property
    def loops(self) -> bool:
        said = words(self.answer)
        grams = [tuple(said[i : i + LOOP_NGRAM]) for i in range(len(said) - LOOP_NGRAM + 1)]
        return len(set(grams)) < len(grams)


async def ask(caller: Caller, question: dict, folder: Path) -> Turn:
    condition = question["condition"] + (
        f" {question['snr_db']:g} dB" if question["snr_db"] else ""
    )
    turn = Turn(question["name"], question["tags"], question["shape"], condition)
    await caller.wait_for(lambda: not caller.bot_speaking(), 60, "the bot to be quiet")
    latencies = len(caller.server_messages("latency"))
    finals = len(caller.of_type("user-transcription"))
    outputs = len(caller.of_type("bot-output"))
    stops = len(caller.of_type("bot-stopped-speaking"))
    asked = time.monotonic()
    pcm = read_wav(folder / question["file"])
    # The words end where the generator measured them (noise may go on after them).
    caller.mic.say(pcm, speech_end=round(question["speech_end_secs"] * MIC_RATE))
    end = caller.mic.speech_end()
    try:
        await caller.wait_for(
            lambda: caller.server_messages("latency")[latencies:],
            max(0.0, end - time.monotonic()) + ANSWER_SECS,
            "the answer",
        )
        # However long the answer runs (the answer guard allows 60 words, 20-30 s of speech).
        await caller.wait_for(
            lambda: len(caller.of_type("bot-stopped-speaking")) > stops, 120, "the answer's end"
        )
        # A turn the caller had not finished may be followed by a second answer: let it come,
        # and the bot be quiet a while, so that it is not taken for the next turn's.
        await asyncio.sleep(max(0.0, end + 0.5 - time.monotonic()))
        while True:
            await caller.wait_for(lambda: not caller.bot_speaking(), 60, "the answer's end")
            starts = len(caller.of_type("bot-started-speaking"))
            await asyncio.sleep(QUIET_SECS)
            if len(caller.of_type("bot-started-speaking")) == starts:
                break
    except AssertionError as error:
        turn.error = str(error).split(";")[0]
        first = caller.first_sound_after(asked)
        turn.cut = first is not None and first < end
        return turn
    records = [m for m in caller.server_messages("latency")[latencies:] if m["kind"] == "turn"]
    turn.turns = len(records)
    if not records:
        # Seen with the seed's stock Smart Turn strategy after a mid-sentence pause: Pipecat's
        # observer lost the turn's start and measured the answer from the call's start instead.
        turn.error = "the bot could not measure this turn"
        return turn
    turn.total_ms, turn.stages_ms = records[-1]["total_ms"], records[-1]["stages_ms"]
    first = caller.first_sound_after(asked)
    turn.cut = first is not None and first < end
    heard = caller.first_sound_after(end)
    turn.caller_ms = (heard - end) * 1000 if heard is not None and not turn.cut else None
    sounds = list(caller.sounds_after(end))
    gaps = [later - earlier for earlier, later in itertools.pairwise(sounds)]
    turn.longest_gap_ms = max(gaps, default=0.0) * 1000 if sounds else None
    texts = caller.of_type("user-transcription")[finals:]
    turn.heard = " ".join(m["data"]["text"] for m in texts if m["data"].get("final"))
    # Each piece is announced before synthesis ("new") and once spoken: count it once.
    said = [
        m for m in caller.of_type("bot-output")[outputs:] if m["data"].get("spoken_status") != "new"
    ]
    turn.answer = " ".join(m["data"].get("text", "") for m in said).strip()
    return turn


async def run(url: str, configs: list[str], questions: list[dict], folder: Path, repeat: int):
    callers = {config: Caller(url) for config in configs}
    results: dict[str, list[Turn]] = {config: [] for config in configs}
    try:
        for config, caller in callers.items():
            await caller.connect({"profile": config})
            await caller.wait_for(
                lambda c=caller: c.of_type("bot-stopped-speaking"), 120, "greeting"
            )
        for round_ in range(repeat):
            for question in questions:
                for config, caller in callers.items():  # interleaved: same load for both
                    for other in callers.values():  # only the call being asked streams audio
                        if other is caller:
                            other.mic.resume()
                        else:
                            other.mic.pause()
                    turn = await ask(caller, question, folder)
                    results[config].append(turn)
                    shown = f"{turn.total_ms:.0f} ms" if turn.total_ms is not None else turn.error
                    verdict = "  CUT-IN" if turn.cut else "  STALL" if turn.stalled else ""
                    print(
                        f"[{round_ + 1}] {config:>4} {question['name']:>15}: {shown:>8}"
                        f"{verdict}  heard {turn.heard!r}",
                        flush=True,
                    )
    finally:
        await asyncio.gather(*(caller.close() for caller in callers.values()))
    return results


async def run_calls(
    url: str, calls: int, questions: list[dict], folder: Path, repeat: int, stagger: float
) -> dict[str, list[Turn]]:
    """`calls` calls at once; call i asks questions i, i + calls, ... after i * `stagger` s."""

    async def one(index: int) -> list[Turn]:
        caller = Caller(url)
        try:
            await caller.connect({"profile": "kit"})
        except httpx.HTTPStatusError as error:  # a refused call (503) is a result
            return [Turn(f"call {index + 1}", [], error=f"refused: {error}")]
        turns = []
        try:
            await caller.wait_for(lambda: caller.of_type("bot-stopped-speaking"), 120, "greeting")
            await asyncio.sleep(index * stagger)
            for question in (questions * repeat)[index::calls]:
                turn = await ask(caller, question, folder)
                turns.append(turn)
                shown = f"{turn.caller_ms:.0f} ms" if turn.caller_ms is not None else turn.error
                print(f"call {index + 1} {question['name']:>15}: caller {shown}", flush=True)
        finally:
            await caller.close()
        return turns

    per_call = await asyncio.gather(*(one(i) for i in range(calls)))
    return {f"{calls} calls": [turn for turns in per_call for turn in turns]}


def summarize(turns: list[Turn]) -> dict:
    measured = [t for t in turns if t.total_ms is not None and not t.cut]

    def stat(values: list[float]) -> dict:
        if not values:
            return {"median": None, "p95": None}
        return {"median": statistics.median(values), "p95": percentile(values, 95)}

    conditions: dict[str, dict[str, int]] = {}
    for t in turns:
        row = conditions.setdefault(t.condition, {"turns": 0, "cut_ins": 0, "stalls": 0})
        row["turns"] += 1
        row["cut_ins"] += t.cut
        row["stalls"] += t.stalled
        row["unanswered"] = row.get("unanswered", 0) + t.unanswered
    return {
        "turns": len(turns),
        "measured": len(measured),
        "errors": sum(bool(t.error) for t in turns),
        "refused": sum(t.error.startswith("refused") for t in turns),
        "cut": sum(t.cut for t in turns),
        "cut_ins": [t.question for t in turns if t.cut],
        "stalls": [t.question for t in turns if t.stalled],
        "unanswered": [t.question for t in turns if t.unanswered],
        "by_condition": conditions,
        "total_ms": stat([t.total_ms for t in measured]),
        "stages_ms": {s: stat([t.stages_ms.get(s, 0.0) for t in measured]) for s in STAGES},
        "caller_ms": stat([t.caller_ms for t in measured if t.caller_ms is not None]),
        "max_endpointing_complete_ms": max(
            (t.stages_ms.get("endpointing", 0.0) for t in measured), default=None
        ),
        "answer_words": stat([t.answer_words for t in measured]),
        "longest_gap_ms": stat(
            [t.longest_gap_ms for t in measured if t.longest_gap_ms is not None]
        ),
        # A silence the caller would take for the end of the answer (or a fault).
        "holes": [t.question for t in measured if (t.longest_gap_ms or 0) > HOLE_MS],
        "max_answer_words": max((t.answer_words for t in measured), default=None),
        "looping_answers": sum(t.loops for t in measured),
    }


def llm_of(url: str) -> dict:
    """The LLM the bot answers with, as its /ready reports it (the server's model id and tags:
    quantisation, threads, timing twin; llama.cpp's parameter count and size)."""
    try:
        return httpx.get(f"{url}/ready", timeout=10).json().get("llm") or {}
    except (httpx.HTTPError, ValueError):
        return {}


def llm_label(llm: dict) -> str:
    """One line naming the model a result was measured with, and whether it was a twin."""
    twin = llm.get("timing-twin-of")
    parts = [f"{twin.split('/')[-1]} timing twin" if twin else str(llm.get("id", "LLM unknown"))]
    if llm.get("quantisation"):
        parts.append(llm["quantisation"])
    if count := llm.get("parameters") or llm.get("n_params"):
        parts.append(f"{count / 1e9:.2f} B")
    if llm.get("generation-threads"):
        parts.append(f"{llm['generation-threads']} generation threads")
    return ", ".join(parts)


def resolve_llm(choice: str) -> Path:
    """`--llm`: a GGUF path, `bundled`, or the name of a model in scripts/timing_twin.py (its
    twin, built into models/twins/ when missing)."""
    from scripts.llm_server import fast_bundled_gguf
    from scripts.timing_twin import MODELS, TWINS, build

    if choice == "bundled":
        return fast_bundled_gguf()
    if choice in MODELS:
        twin = TWINS / f"{choice}-twin.{MODELS[choice].quant}.gguf"
        return twin if twin.is_file() else build(choice)
    path = Path(choice)
    if not path.is_file():
        raise SystemExit(f"--llm: no such GGUF, nor a model {sorted(MODELS)}: {choice!r}")
    return path


@contextmanager
def stack_with(gguf: Path, url: str):
    """`make run`'s stack, its embedded llama.cpp server serving `gguf`, for the benchmark's
    length (yields the launcher's process id); `url` must be free."""
    if not _gone(url, within=30):  # a stack just stopped may still be closing
        raise SystemExit(f"a bot already answers at {url}: stop it, or leave --llm out")
    env = {**os.environ, "LLM_GGUF": str(gguf), "BOT_PORT": str(urlparse(url).port or 7860)}
    log = (ROOT / "bench-results").joinpath("stack.log")
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        stack = subprocess.Popen(
            [sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
        try:
            deadline = time.monotonic() + 900
            while stack.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    if httpx.get(f"{url}/ready", timeout=5).json().get("ready"):
                        break
                time.sleep(1)
            else:
                raise SystemExit(f"the stack did not start; see {log}")
            yield stack.pid
        finally:
            stack.send_signal(signal.SIGINT)
            stack.wait(60)
            _gone(url, within=30)


def _gone(url: str, within: float) -> bool:
    """Whether nothing answers at `url` (waiting up to `within` seconds for it to stop)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=2)
        except httpx.HTTPError:
            return True
        time.sleep(1)
    return False


def llm_speed(llm_url: str, persona: str) -> dict:
    """The embedded server's own pace on the persona: a question's first token with the
    persona cached, and tokens a second over 64."""
    body = {"messages": [{"role": "system", "content": persona}], "max_tokens": 64,
            "ignore_eos": True, "id_slot": 0}  # fmt: skip
    ask = [*body["messages"], {"role": "user", "content": "What do bees make?"}]
    with httpx.Client(timeout=600) as client:
        client.post(f"{llm_url}/v1/chat/completions", json={**body, "max_tokens": 1})
        start = time.monotonic()
        answer = client.post(f"{llm_url}/v1/chat/completions", json={**body, "messages": ask})
    timings = answer.json()["timings"]
    return {
        "warm_first_token_ms": timings["prompt_ms"]
        + timings["predicted_ms"] / timings["predicted_n"],
        "tokens_per_s": timings["predicted_per_second"],
        "request_ms": (time.monotonic() - start) * 1000,
    }


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found[1].strip() if found else ""
    return f"{os.cpu_count()} vCPU {platform.machine()} {model}".strip()


def markdown(summary: dict[str, dict], ratio: dict[str, float] | None) -> str:
    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value:.0f}"

    header = "| config | stat | " + " | ".join(STAGES) + " | voice-to-voice | caller |"
    lines = [header, "|" + "---|" * (len(STAGES) + 4)]
    for config, s in summary.items():
        for stat in ("median", "p95"):
            stages = " | ".join(ms(s["stages_ms"][st][stat]) for st in STAGES)
            lines.append(
                f"| {config} | {stat} | {stages} | **{ms(s['total_ms'][stat])}** | "
                f"{ms(s['caller_ms'][stat])} |"
            )
    if ratio:
        cells = " | ".join(f"{ratio.get(st, float('nan')):.2f}" for st in STAGES)
        lines.append(
            f"| kit ÷ seed | median | {cells} | **{ratio['total']:.2f}** | "
            f"{ratio.get('caller', float('nan')):.2f} |"
        )
    lines.append("")
    for config, s in summary.items():
        lines.append(
            f"- {config}: {s['measured']}/{s['turns']} turns measured; cut-ins "
            f"{len(s['cut_ins'])} {s['cut_ins']}, stalls {len(s['stalls'])} {s['stalls']}, "
            f"unanswered {len(s['unanswered'])} {s['unanswered']}; {s['errors']} errors "
            f"({s['refused']} calls refused); slowest endpointing on a finished turn "
            f"{ms(s['max_endpointing_complete_ms'])} ms; answers median "
            f"{ms(s['answer_words']['median'])} words (max {s['max_answer_words']}), "
            f"{s['looping_answers']} looping"
        )
    return "\n".join(lines) + "\n"


def chart(summary: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(summary)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.8 * len(configs)))
    left = [0.0] * len(configs)
    for stage in STAGES:
        values = [summary[c]["stages_ms"][stage]["median"] or 0.0 for c in configs]
        ax.barh(configs, values, left=left, label=stage)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for y, config in enumerate(configs):
        total = summary[config]["total_ms"]["median"]
        if total is not None:
            ax.text(left[y] + 10, y, f"{total:.0f} ms", va="center")
    ax.set_xlabel("median voice-to-voice, ms (stages stacked)")
    ax.set_title(title, fontsize=9)
    ax.legend(ncols=len(STAGES), loc="upper center", bbox_to_anchor=(0.5, -0.35), fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860", help="the bot (make run's)")
    parser.add_argument("--compare", choices=["seed"], help="also the seed's configuration")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over the question set")
    parser.add_argument("--questions", type=Path, default=TURNS_DIR, help="the turn set's folder")
    parser.add_argument(
        "--part",
        choices=["held-out", "dev", "tune", "all"],
        default="held-out",
        help="of the turn set",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="ask only these questions")
    parser.add_argument(
        "--calls", type=int, default=1, help="calls at once (load; not with --compare)"
    )
    parser.add_argument("--stagger", type=float, default=3.0, help="seconds between calls' turns")
    parser.add_argument(
        "--llm",
        metavar="GGUF|MODEL",
        help="start make run's stack serving this GGUF, `bundled`, or a model's timing twin",
    )
    args = parser.parse_args()
    if args.calls > 1 and args.compare:
        parser.error("--calls and --compare measure different things: use one")

    questions = [
        q for q in make(args.questions, args.only) if args.part in ("all", q["part"]) or args.only
    ]
    configs = ["kit", *([args.compare] if args.compare else [])]
    # Stopped by a signal, the benchmark still stops the stack it started (`stack_with`).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with stack_with(resolve_llm(args.llm), args.url) if args.llm else contextlib.nullcontext():
        llm = llm_of(args.url)
        if args.llm:
            from bot.config import load_settings
            from scripts.llm_server import LLMServerSettings

            port = LLMServerSettings().llm_server_port
            llm.update(llm_speed(f"http://127.0.0.1:{port}", load_settings().system_prompt))
        print(f"LLM: {llm_label(llm)}", flush=True)
        if args.calls > 1:
            load = run_calls(
                args.url, args.calls, questions, args.questions, args.repeat, args.stagger
            )
            results = asyncio.run(load)
        else:
            results = asyncio.run(run(args.url, configs, questions, args.questions, args.repeat))

    summary = {config: summarize(turns) for config, turns in results.items()}
    ratio = None
    if args.compare:
        kit, seed = summary["kit"], summary[args.compare]

        def divide(a: float | None, b: float | None) -> float:
            return a / b if a is not None and b else float("nan")

        ratio = {
            st: divide(kit["stages_ms"][st]["median"], seed["stages_ms"][st]["median"])
            for st in STAGES
        }
        ratio["total"] = divide(kit["total_ms"]["median"], seed["total_ms"]["median"])
        ratio["caller"] = divide(kit["caller_ms"]["median"], seed["caller_ms"]["median"])

    args.out.mkdir(parents=True, exist_ok=True)
    calls = f", {args.calls} calls at once" if args.calls > 1 else ""
    part = "" if args.only else f" ({args.part})"
    title = f"{len(questions)} turns{part} × {args.repeat}{calls}, {machine()}; {llm_label(llm)}"
    report = {
        "machine": machine(),
        "llm": llm,
        "url": args.url,
        "part": None if args.only else args.part,
        "questions": len(questions),
        "repeat": args.repeat,
        "calls": args.calls,
        "summary": summary,
        "ratio": ratio,
        "turns": {config: [asdict(t) for t in turns] for config, turns in results.items()},
    }
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))
    table = markdown(summary, ratio)
    (args.out / "bench.md").write_text(f"{title}\n\n{table}")
    chart(summary, args.out / "bench.png", title)
    print(f"\n{title}\n\n{table}\nwritten to {args.out}/bench.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
