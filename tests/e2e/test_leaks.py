"""Nothing a call holds outlives it: 50 abandoned offers and 50 short calls against a bot of its
own, then its sockets, event-loop tasks and threads are back where they were, and its memory has
stopped growing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from scripts.caller import Caller
from tests.e2e.test_call_limit import offer
from tests.e2e.test_twilio import phone_bot_env
from tests.support import free_port, metric, server_process

pytestmark = pytest.mark.e2e

CONNECT_TIMEOUT_SECS = 2
AT_ONCE = 2  # calls in flight together: the bot's default limit on these 2-core machines
ROUNDS = 50


def sockets(pid: int, pooled: set[int], own: int) -> int:
    """The process's sockets, less those that come and go whatever the calls do: its pooled
    keep-alive connections to the LLM and TTS servers (ports `pooled`), and HTTP connections to
    its own port `own` (this test's requests) that it has not yet seen closed."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    to_pool = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            listening = fields[3] == "0A"
            if remote in pooled or (local == own and not listening):
                to_pool.add(fields[9])
    return len(inodes - to_pool)


def status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status (Threads, VmRSS in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


async def quiet(url: str, within: float = 60) -> str:
    """Once no call is left, the bot's /metrics page."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as client:
        while True:
            page = (await client.get(f"{url}/metrics")).text
            if metric(page, "kit_calls_active") == 0:
                return page
            assert time.monotonic() < deadline, "calls were left running"
            await asyncio.sleep(0.2)


async def short_call(url: str) -> None:
    """Connect, hear the greeting begin, hang up."""
    caller = Caller(url)
    await caller.connect()
    try:
        await caller.wait_for(lambda: caller.of_type("bot-started-speaking"), 60, "the greeting")
    finally:
        await caller.close()


def within(now: dict[str, int], baseline: dict[str, int]) -> bool:
    """Nothing grew (fewer is fine: a thread pool may have let a worker go)."""
    return all(now[key] <= baseline[key] for key in baseline)


async def footprint(url: str, pid: int, pooled: set[int]) -> dict[str, int]:
    own = urlparse(url).port
    page = await quiet(url)
    await asyncio.sleep(1)  # sockets a call closed are gone from /proc a moment later
    page = await quiet(url)
    return {
        "sockets": sockets(pid, pooled, own),
        "tasks": int(metric(page, "kit_event_loop_tasks")),
        "threads": status(pid, "Threads"),
    }


async def test_abandoned_offers_and_short_calls_leave_nothing_behind(stack):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = phone_bot_env(
        stack,
        port,
        BOT_MAX_CALLS=str(AT_ONCE),
        BOT_CONNECT_TIMEOUT_SECS=str(CONNECT_TIMEOUT_SECS),
    )
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/ready", name="leak-bot") as bot:
        # Warm up what lives as long as the process: Whisper's and the HTTP session's threads
        # and pooled connections, Smart Turn, the thread pool.
        await asyncio.gather(*(short_call(url) for _ in range(AT_ONCE)))
        pooled = {urlparse(stack.llm_url).port, urlparse(stack.tts_url).port}
        baseline = await footprint(url, bot.pid, pooled)

        for _ in range(ROUNDS // AT_ONCE):
            responses = await asyncio.gather(*(offer(url) for _ in range(AT_ONCE)))
            assert [r.status_code for r in responses] == [200] * AT_ONCE
            await quiet(url, CONNECT_TIMEOUT_SECS + 30)
        after_offers = await footprint(url, bot.pid, pooled)
        assert within(after_offers, baseline), f"offers left {after_offers} against {baseline}"

        rss = []
        for _ in range(ROUNDS // AT_ONCE):
            await asyncio.gather(*(short_call(url) for _ in range(AT_ONCE)))
            rss.append(status(bot.pid, "VmRSS"))
        after = await footprint(url, bot.pid, pooled)
        half = len(rss) // 2
        growth_mb = (max(rss[half:]) - rss[half - 1]) / 1024
        print(f"RSS over the calls (MB): {[round(kb / 1024) for kb in rss]}")
        assert within(after, baseline), f"calls left {after} against {baseline}"
        assert growth_mb < 50, f"memory grew {growth_mb:.0f} MB over the second half"
