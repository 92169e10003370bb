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
from tests.support import free_port, metric, offer, server_process
from tests.support.phone import phone_bot_env

pytestmark = pytest.mark.e2e

CONNECT_TIMEOUT_SECS = 2
AT_ONCE = 2  # calls in flight together: the bot's default limit on these 2-core machines
ROUNDS = 50


def sockets(pid: int, pooled: set[int], own: int) -> dict[str, str]:
    """The process's sockets by inode, each described (kind, endpoints, state), less those that
    come and go whatever the calls do: its pooled keep-alive connections to the LLM and TTS
    servers (ports `pooled`), and HTTP connections to its own port `own` (this test's requests)
    that it has not yet seen closed."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    described = {inode: "unknown" for inode in inodes}
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            inode = fields[9]
            if inode not in inodes:
                continue
            if table.startswith("tcp") and (
                remote in pooled or (local == own and fields[3] != "0A")
            ):
                del described[inode]
            else:
                described[inode] = f"{table} :{local} -> :{remote} state {fields[3]}"
    for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[6] in described:
            described[fields[6]] = f"unix {' '.join(fields[7:]) or '(unnamed)'} state {fields[5]}"
    return described


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


def counts(footprint: dict) -> dict[str, int]:
    return {key: len(value) if key == "sockets" else value for key, value in footprint.items()}


def within(now: dict, baseline: dict) -> bool:
    """Nothing grew (fewer is fine: a thread pool may have let a worker go)."""
    return all(value <= counts(baseline)[key] for key, value in counts(now).items())


def grown(now: dict, baseline: dict) -> str:
    """The counts and the sockets that were not there at the baseline, for a failure message."""
    new = {
        inode: kind for inode, kind in now["sockets"].items() if inode not in baseline["sockets"]
    }
    return f"{counts(now)} against {counts(baseline)}; new sockets: {new}"


async def footprint(url: str, pid: int, pooled: set[int]) -> dict:
    page = await quiet(url)
    return {
        "sockets": sockets(pid, pooled, urlparse(url).port),
        "tasks": int(metric(page, "kit_event_loop_tasks")),
        # The default executor keeps the workers it has started (bounded, checked below).
        "threads": status(pid, "Threads") - int(metric(page, "kit_executor_threads")),
    }


async def settled(url: str, pid: int, pooled: set[int], baseline: dict, within_secs=15) -> dict:
    """The footprint once it is back within `baseline`, or as it is after `within_secs`: a call's
    sockets and tasks close a moment after it ends (ICE transports, the HTTP session's tasks),
    later still on a busy machine; what leaked never comes back down."""
    deadline = time.monotonic() + within_secs
    while not within(now := await footprint(url, pid, pooled), baseline):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    return now


async def steady(url: str, pid: int, pooled: set[int], within_secs=15) -> dict:
    """The footprint once it has not changed for a second (the warm-up calls' sockets closed)."""
    deadline = time.monotonic() + within_secs
    readings = [await footprint(url, pid, pooled)]
    while time.monotonic() < deadline and not (
        len(readings) >= 3 and all(counts(r) == counts(readings[-1]) for r in readings[-3:])
    ):
        await asyncio.sleep(0.5)
        readings.append(await footprint(url, pid, pooled))
    return readings[-1]


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
        baseline = await steady(url, bot.pid, pooled)

        for _ in range(ROUNDS // AT_ONCE):
            responses = await asyncio.gather(*(offer(url) for _ in range(AT_ONCE)))
            assert [r.status_code for r in responses] == [200] * AT_ONCE
            await quiet(url, CONNECT_TIMEOUT_SECS + 30)
        after_offers = await settled(url, bot.pid, pooled, baseline)
        assert within(after_offers, baseline), f"offers left {grown(after_offers, baseline)}"

        rss = []
        for _ in range(ROUNDS // AT_ONCE):
            await asyncio.gather(*(short_call(url) for _ in range(AT_ONCE)))
            await quiet(url)  # both places free again before the next two callers
            rss.append(status(bot.pid, "VmRSS"))
        after = await settled(url, bot.pid, pooled, baseline)
        half = len(rss) // 2
        growth_mb = (max(rss[half:]) - rss[half - 1]) / 1024
        print(f"RSS over the calls (MB): {[round(kb / 1024) for kb in rss]}")
        assert within(after, baseline), f"calls left {grown(after, baseline)}"
        executor = metric(await quiet(url), "kit_executor_threads")
        assert executor <= min(32, (os.cpu_count() or 1) + 4)  # asyncio's bound on its pool
        assert growth_mb < 50, f"memory grew {growth_mb:.0f} MB over the second half"
