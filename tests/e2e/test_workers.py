"""BOT_WORKERS: calls run in worker processes behind the bot's one port. Each call's signalling
reaches the worker that holds it, WebSocket and phone calls are relayed to theirs, the call beyond
the limit is refused in words, and a worker that dies ends its own calls only, then comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest
import websockets

from scripts.caller import Caller, read_wav
from tests.e2e.test_call_limit import health, offer, ws_refusal
from tests.e2e.test_dialogue import two_calls_keep_their_own_slots
from tests.e2e.test_twilio import CALL, hear_the_greeting, phone_bot_env, signed_webhook, stream_of
from tests.support import (
    FIXTURES,
    SocketCaller,
    a_new_call_is_greeted,
    ask,
    free_port,
    greeting_of,
    metric,
    rms,
    server_process,
)

pytestmark = pytest.mark.e2e

BUSY = "the bot is busy: all 2 lines are in use; try again when a call ends"
QUESTION = read_wav(FIXTURES / "questions" / "france.wav")


@pytest.fixture(scope="module")
def two_workers(stack):
    """A bot whose two calls run in two worker processes, one call each."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = phone_bot_env(stack, port, BOT_WORKERS="2", BOT_MAX_CALLS="2")
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/ready", name="workers-bot"):
        yield url


async def test_calls_in_different_workers_keep_to_different_llama_cpp_slots(two_workers):
    """Each worker keeps to its own slots: two workers' calls never share (and overwrite) one."""
    await two_calls_keep_their_own_slots(two_workers)


async def calls_per_worker(url: str) -> list[int]:
    return [w["calls"] for w in (await health(url))["workers"]]


async def wait_for_calls(url: str, expected: list[int], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while (now := await calls_per_worker(url)) != expected:
        assert time.monotonic() < deadline, f"calls per worker {now}, expected {expected}"
        await asyncio.sleep(0.2)


async def test_calls_spread_over_the_workers_and_the_one_beyond_is_refused(two_workers):
    url = two_workers
    state = await health(url)
    assert (state["calls"], state["max_calls"], len(state["workers"])) == (0, 2, 2)
    pids = {w["pid"] for w in state["workers"]}
    assert len(pids) == 2 and os.getpid() not in pids

    first, second = Caller(url), Caller(url)
    await first.connect()
    await second.connect()
    try:
        assert rms(await greeting_of(first)) > 0.01
        assert rms(await greeting_of(second)) > 0.01
        assert await calls_per_worker(url) == [1, 1]  # one call in each process

        # Trickled candidates reach the worker holding that peer connection, for both calls:
        # any other worker would answer 404 for a pc_id it does not know.
        async with httpx.AsyncClient() as client:
            for caller in (first, second):
                patch = {"pc_id": caller.pc_id, "candidates": []}
                answer = await client.patch(f"{url}/api/offer", json=patch)
                assert answer.status_code == 200, answer.text
            unknown = await client.patch(
                f"{url}/api/offer", json={"pc_id": "no-such-call", "candidates": []}
            )
            assert unknown.status_code == 404
            bad = await client.patch(f"{url}/api/offer", json={"pc_id": 7})
            assert bad.status_code == 400 and "pc_id" in bad.json()["error"]
            # The API's description is the workers': the offer's body schema and all.
            api = (await client.get(f"{url}/openapi.json")).json()
            assert "requestBody" in api["paths"]["/api/offer"]["post"]

        refused = await offer(url)
        assert refused.status_code == 503 and refused.json() == {"error": BUSY}
        assert await ws_refusal(url) == ({"type": "error", "error": BUSY}, 1013, BUSY)

        state = await health(url)
        assert (state["calls"], state["refused"]) == (2, 2)
        async with httpx.AsyncClient() as client:
            page = (await client.get(f"{url}/metrics")).text
        for worker in ("0", "1"):
            assert metric(page, "kit_calls_active", worker=worker) == 1
            assert metric(page, "kit_calls_max", worker=worker) == 1
        assert metric(page, "kit_worker_restarts_total") == 0
        # Both calls still up: the refusals touched neither.
        assert first.pc.connectionState == second.pc.connectionState == "connected"
    finally:
        await first.close()
        await second.close()
    await wait_for_calls(url, [0, 0])


async def test_websocket_and_phone_calls_are_relayed_to_their_workers(two_workers):
    url = two_workers
    ws_url = url.replace("http", "ws")
    async with SocketCaller.call(f"{ws_url}/ws") as caller:
        assert rms(await caller.greeting()) > 0.01
        busy_worker = (await calls_per_worker(url)).index(1)

        # The phone call goes to the other worker, whose TwiML names its own stream.
        stream, parameters = stream_of((await asyncio.to_thread(signed_webhook, url, CALL)).text)
        assert stream == f"{ws_url}/twilio/ws/{1 - busy_worker}"
        await hear_the_greeting(stream, parameters["token"])

    # The worker's own refusals come through the relay as they are: code, reason, message.
    refusal, code, _ = await ws_refusal(url, {"voice": "no-such-voice"})
    assert refusal["type"] == "error" and "voice" in refusal["error"] and code == 1008
    with pytest.raises(websockets.InvalidStatus) as unsigned:  # no Twilio signature
        async with websockets.connect(f"{ws_url}/twilio/ws/0"):
            pass
    assert unsigned.value.response.status_code == 403
    await wait_for_calls(url, [0, 0])


async def test_a_worker_that_dies_ends_only_its_own_calls_and_comes_back(two_workers):
    url = two_workers
    doomed, survivor = Caller(url), Caller(url)
    await doomed.connect()
    await wait_for_calls(url, [1, 0])
    await survivor.connect()
    try:
        await greeting_of(doomed)
        await greeting_of(survivor)
        workers = (await health(url))["workers"]
        os.kill(workers[0]["pid"], signal.SIGKILL)

        # The other worker's call goes on: it hears a question and answers it.
        heard, answer, _ = await ask(survivor, QUESTION)
        assert "france" in heard.lower()
        assert rms(answer) > 0.01
        assert survivor.pc.connectionState == "connected"

        deadline = time.monotonic() + 90
        state = await health(url)
        while not all(w["up"] and not w["loading"] for w in state["workers"]):
            assert time.monotonic() < deadline, f"the worker did not come back: {state}"
            await asyncio.sleep(0.5)
            state = await health(url)
        assert state["workers"][0]["pid"] != workers[0]["pid"]
        async with httpx.AsyncClient() as client:
            page = (await client.get(f"{url}/metrics")).text
        assert metric(page, "kit_worker_restarts_total") == 1
    finally:
        await doomed.close()
        await survivor.close()

    # The restarted worker takes calls again.
    await wait_for_calls(url, [0, 0])
    await a_new_call_is_greeted(url)
