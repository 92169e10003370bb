"""BOT_MAX_CALLS: the call beyond the limit is refused in words before any media, on every
transport, and `/health` counts it; once a call ends, its place is taken again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
import websockets

from scripts.caller import Caller
from tests.support import (
    a_new_call_is_greeted,
    free_port,
    greeting_of,
    metric,
    offer,
    rms,
    server_process,
)
from tests.support.phone import (
    CALL,
    PhoneLine,
    open_stream,
    phone_bot_env,
    signed_webhook,
    stream_of,
)

pytestmark = pytest.mark.e2e

CONNECT_TIMEOUT_SECS = 6
BUSY = "the bot is busy: the one line is in use; try again when a call ends"


@pytest.fixture(scope="module")
def one_line_bot(stack):
    """A bot taking one call at a time, on the stack's LLM and TTS, reachable as a phone line."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = phone_bot_env(
        stack, port, BOT_MAX_CALLS="1", BOT_CONNECT_TIMEOUT_SECS=str(CONNECT_TIMEOUT_SECS)
    )
    with server_process(
        ["-m", "bot"], env=env, ready_url=f"{url}/ready", name="one-line-bot"
    ) as proc:
        yield url, proc


def sockets(pid: int) -> int:
    """Sockets the process holds open (TCP and UDP alike)."""
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed since the listing
            held += os.readlink(fd).startswith("socket:")
    return held


async def wait_until_free(url: str, within: float) -> None:
    deadline = time.monotonic() + within
    while (await health(url))["calls"]:
        assert time.monotonic() < deadline, "an ended call kept its place"
        await asyncio.sleep(0.2)


async def health(url: str) -> dict:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{url}/health")).json()


async def ws_refusal(url: str, start: dict | None = None) -> tuple[dict, int, str]:
    """A /ws call refused: the message the bot sent, then its close code and reason."""
    async with websockets.connect(url.replace("http", "ws") + "/ws") as ws:
        await ws.send(json.dumps({"type": "start", **(start or {})}))
        message = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return message, closed.value.rcvd.code, closed.value.rcvd.reason


async def test_the_call_beyond_the_limit_is_refused_on_every_transport(one_line_bot):
    one_line_bot, _ = one_line_bot
    assert await health(one_line_bot) == {
        "status": "ok",
        "loading": False,
        "calls": 0,
        "max_calls": 1,
        "refused": 0,
    }
    first = Caller(one_line_bot)
    await first.connect()
    try:
        assert rms(await greeting_of(first)) > 0.01
        assert (await health(one_line_bot))["calls"] == 1

        refused = await offer(one_line_bot)
        assert refused.status_code == 503
        assert refused.json() == {"error": BUSY}
        assert refused.headers["retry-after"] == "5"

        assert await ws_refusal(one_line_bot) == ({"type": "error", "error": BUSY}, 1013, BUSY)

        twiml = await asyncio.to_thread(signed_webhook, one_line_bot, CALL)
        assert twiml.status_code == 200
        response = ET.fromstring(twiml.text)
        assert response.find("Connect") is None, twiml.text  # no stream is opened
        assert "all our lines are busy" in response.findtext("Say")
        assert response.find("Hangup") is not None

        assert await health(one_line_bot) == {
            "status": "ok",
            "loading": False,
            "calls": 1,
            "max_calls": 1,
            "refused": 3,
        }
        async with httpx.AsyncClient() as client:
            page = (await client.get(f"{one_line_bot}/metrics")).text
        assert metric(page, "kit_calls_refused_total") == 3
        assert (metric(page, "kit_calls_active"), metric(page, "kit_calls_max")) == (1, 1)
        # The call that holds the line was not slowed or ended by the refusals.
        assert not first.server_messages("error")
        assert first.pc.connectionState == "connected"
    finally:
        await first.close()

    await wait_until_free(one_line_bot, 20)
    await a_new_call_is_greeted(one_line_bot)


async def test_failed_and_abandoned_offers_give_their_place_and_sockets_back(one_line_bot):
    """An offer that cannot be used frees its place at once; one whose caller never connects
    (the tab closed after the offer) holds it until BOT_CONNECT_TIMEOUT_SECS, then frees it and
    every socket its peer connection had bound."""
    url, bot = one_line_bot
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=garbage\r\n"
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            bad = await client.post(f"{url}/api/offer", json={"sdp": sdp, "type": "offer"})
            assert bad.status_code == 400
    assert (await health(url))["calls"] == 0
    baseline = sockets(bot.pid)
    for _ in range(3):
        accepted = await offer(url)
        assert accepted.status_code == 200, accepted.text
        assert (await health(url))["calls"] == 1
        await wait_until_free(url, CONNECT_TIMEOUT_SECS + 10)
    assert sockets(bot.pid) <= baseline


async def test_a_phone_stream_that_finds_the_line_taken_is_closed_with_the_reason(one_line_bot):
    """The webhook saw a free line; another call took it before Twilio opened the stream. The
    stream closes with 1013 and the reason, and Twilio goes on to the TwiML's spoken apology."""
    one_line_bot, _ = one_line_bot
    twiml = (await asyncio.to_thread(signed_webhook, one_line_bot, CALL)).text
    url, parameters = stream_of(twiml)
    assert "not available" in ET.fromstring(twiml).findtext("Say")  # what Twilio says next
    first = Caller(one_line_bot)
    await first.connect()
    try:
        await greeting_of(first)
        async with await open_stream(url) as ws:
            line = PhoneLine(ws)
            await line.start(parameters["token"])
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1013 and closed.value.rcvd.reason == BUSY
        assert not line.of("media")
    finally:
        await first.close()


async def test_an_offer_the_page_gives_up_on_frees_its_place_at_once(one_line_bot):
    """DELETE /api/offer with the answer's pc_id (the page's fallback to the WebSocket)."""
    url, _ = one_line_bot
    await wait_until_free(url, CONNECT_TIMEOUT_SECS + 10)
    accepted = await offer(url)
    assert accepted.status_code == 200
    async with httpx.AsyncClient() as client:
        ended = await client.request(
            "DELETE", f"{url}/api/offer", json={"pc_id": accepted.json()["pc_id"]}
        )
        assert (ended.status_code, ended.json()) == (200, {"status": "ended"})
        await wait_until_free(url, CONNECT_TIMEOUT_SECS / 2)  # long before the deadline
        unknown = await client.request("DELETE", f"{url}/api/offer", json={"pc_id": "nobody"})
        assert unknown.status_code == 404
        assert unknown.json() == {"error": "pc_id: no call with this id (it may have ended)"}
