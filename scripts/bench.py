"""Voice-to-voice latency of the running stack: N spoken turns over WebRTC, median and p95.

    python scripts/bench.py [--url http://127.0.0.1:7860] [--turns 10]

Each turn plays a recorded question (tests/fixtures/questions/*.wav) as the microphone at
real-time pace and waits for the spoken answer. Two views of each turn are printed:
- the bot's breakdown (Pipecat's UserBotLatencyObserver): from the moment the user really
  stopped speaking to the first audio the bot sends, split into endpointing, STT, LLM, TTS and
  the unattributed rest;
- the caller's view: from its last loud sample sent to the first loud sample received back,
  which adds the network and jitter buffer both ways (no browser playout).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.latency import STAGES, CallLatency, TurnLatency, percentile  # noqa: E402
from scripts.caller import Caller, read_wav  # noqa: E402

QUESTIONS = sorted((ROOT / "tests" / "fixtures" / "questions").glob("*.wav"))


async def run(url: str, turns: int) -> tuple[CallLatency, list[float]]:
    caller = Caller(url)
    await caller.connect()
    call = CallLatency()
    client_side: list[float] = []
    try:
        await caller.wait_for(lambda: caller.of_type("bot-stopped-speaking"), 120, "the greeting")
        for number, path in zip(range(1, turns + 1), itertools.cycle(QUESTIONS), strict=False):
            seen = len(caller.server_messages("latency"))
            stops = len(caller.of_type("bot-stopped-speaking"))
            caller.mic.say(read_wav(path))
            latency = await caller.wait_for(
                lambda s=seen: [
                    m for m in caller.server_messages("latency")[s:] if m["kind"] == "turn"
                ],
                60,
                f"turn {number}'s latency",
            )
            await caller.wait_for(
                lambda s=stops: len(caller.of_type("bot-stopped-speaking")) > s, 90, "the answer"
            )
            stages = latency[-1]["stages_ms"]
            turn = TurnLatency(
                number, latency[-1]["total_ms"] / 1000, {k: v / 1000 for k, v in stages.items()}
            )
            call.add(turn)
            end = caller.mic.speech_end()
            heard = caller.first_sound_after(end)
            if heard is not None:
                client_side.append(heard - end)
            print(f"{path.stem:>8}: {turn.log_line()}", flush=True)
            await asyncio.sleep(0.5)  # a breath between turns
    finally:
        await caller.close()
    return call, client_side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--turns", type=int, default=10)
    args = parser.parse_args()

    call, client_side = asyncio.run(run(args.url, args.turns))
    print("\nBot-side breakdown (ms):")
    print(call.summary_table())
    stats = call.stats()
    if stats:
        rests = [t.stages["rest"] for t in call.user_turns()]
        print(
            f"\nvoice-to-voice (bot): median {stats['median'] * 1000:.0f} ms, "
            f"p95 {stats['p95'] * 1000:.0f} ms over {stats['turns']} turns; "
            f"unattributed rest median {statistics.median(rests) * 1000:.0f} ms"
        )
    if client_side:
        print(
            f"voice-to-voice (caller, WebRTC both ways): median "
            f"{statistics.median(client_side) * 1000:.0f} ms, "
            f"p95 {percentile(client_side, 95) * 1000:.0f} ms"
        )
    print(f"stages: {', '.join(STAGES)}")


if __name__ == "__main__":
    main()
