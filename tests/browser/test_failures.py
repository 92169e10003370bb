"""What goes wrong is said on the page in plain words: a denied microphone, settings the bot
refuses, and a bot that goes away mid-call (then a working reconnect)."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlparse

import httpx
import pytest

from scripts.caller import Caller
from tests.support import free_port, server_process, stop_process
from tests.support.browser import NO_UDP, CallPage, Microphone
from tests.support.stacks import stack_env

pytestmark = pytest.mark.browser

GREETING_SECS = 8


async def test_denied_microphone_is_explained(stack, open_page):
    # Without the fake permission UI, headless Chromium denies the permission request itself.
    page = await open_page(stack.bot_url, fake_ui=False)
    call = CallPage(page)
    await call.connect("webrtc")
    await call.until("!document.getElementById('alert').hidden", "the microphone error")
    assert "microphone is blocked" in await call.alert()
    assert await call.state() == "idle"
    assert await page.is_enabled("#connect")


@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
async def test_refused_settings_show_the_bots_words(stack, open_page, transport):
    page = await open_page(stack.bot_url, speech=[1])
    call = CallPage(page)
    # The page's own placeholder ("Server default") stands until the bot has listed them.
    await call.until(
        "[...document.getElementById('voice').options].some((o) => o.value)", "the voice list"
    )
    # A voice the TTS server does not have (as after it restarted with other voices).
    await page.evaluate(
        """() => {
            const voice = document.getElementById("voice");
            voice.add(new Option("nobody", "nobody"));
            voice.value = "nobody";
        }"""
    )
    await call.connect(transport)
    await call.until("!document.getElementById('alert').hidden", "the bot's refusal")
    alert = await call.alert()
    assert "refused these settings" in alert
    assert "voice: 'nobody' is not offered by the TTS server (it has: heart)" in alert
    assert await call.state() == "idle"
    assert await page.get_attribute("#voice", "aria-invalid") is not None


async def test_lost_bot_is_reported_and_reconnect_works(stack, open_page):
    # A bot of its own, on the shared LLM and TTS servers, so that it can be stopped.
    bot_port = free_port()
    env = stack_env(urlparse(stack.llm_url).port, urlparse(stack.tts_url).port, bot_port)["bot"]
    url = f"http://127.0.0.1:{bot_port}"

    def bot(n: int):
        return server_process(
            ["-m", "bot"], env=env, ready_url=f"{url}/ready", name=f"browser-lost-bot-{n}"
        )

    with contextlib.ExitStack() as processes:
        first = processes.enter_context(bot(1))
        page = await open_page(url, speech=[60])
        call = CallPage(page)
        await call.connect("webrtc")
        await call.connected("webrtc")
        await call.greeting_heard()

        stop_process(first)
        await call.until("document.body.dataset.state === 'lost'", "the lost connection", 60)
        assert "Connection lost" in await call.alert()
        assert await page.is_visible("#reconnect")

        processes.enter_context(bot(2))
        await page.click("#reconnect")
        await call.connected("webrtc")
        await call.greeting_heard(bot_lines=2)  # greeted again, and heard
        assert not await call.alert()


async def test_llm_and_tts_down_are_shown_where_the_person_looks(open_page):
    # A bot whose LLM and TTS servers are not there: it still starts, and calls still connect.
    bot_port = free_port()
    env = stack_env(free_port(), free_port(), bot_port)["bot"]
    url = f"http://127.0.0.1:{bot_port}"
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/health", name="browser-down-bot"):
        await wait_for_whisper(url)
        page = await open_page(url, mic=True)
        call = CallPage(page)
        # The voices cannot be listed; the page says so and keeps the default voice.
        await call.until("!document.getElementById('voices-note').hidden", "the voices note")
        assert "Voices could not be listed" in await page.inner_text("#voices-note")
        assert "TTS server is unreachable" in await page.inner_text("#voices-note")

        await call.connect("webrtc")
        await call.connected("webrtc")
        await call.until(
            "document.getElementById('alert').innerText.includes('(TTS)')",
            "the TTS server's failure on the page",
        )
        await Microphone(page).say("france")  # a question for the LLM, which is not there either
        await call.until(
            "document.getElementById('alert').innerText.includes('language model')",
            "the LLM's failure on the page",
        )
        alert = await call.alert()
        assert "The voice server (TTS) is not working" in alert, alert
        assert "The language model is not working" in alert, alert
        assert await call.state() == "connected"  # the call itself goes on


async def wait_for_whisper(url: str) -> None:
    """/ready stays 503 without an LLM; calls are taken once Whisper is loaded."""
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if (await client.get(f"{url}/ready")).json().get("stt"):
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"Whisper did not load in {url}")


async def test_a_full_bot_says_so_on_the_page(stack, open_page):
    """BOT_MAX_CALLS=1 and the line taken by another caller: on either transport the page shows
    the bot's reason and offers to reconnect; it does not fall back or hang."""
    bot_port = free_port()
    env = stack_env(urlparse(stack.llm_url).port, urlparse(stack.tts_url).port, bot_port)["bot"]
    url = f"http://127.0.0.1:{bot_port}"
    env = {**env, "BOT_MAX_CALLS": "1"}
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/ready", name="browser-full-bot"):
        holder = Caller(url)
        await holder.connect()
        try:
            for transport in ("webrtc", "websocket"):
                page = await open_page(url, speech=[1])
                call = CallPage(page)
                await call.connect(transport)
                await call.until("!document.getElementById('alert').hidden", "the refusal")
                alert = await call.alert()
                assert "cannot take this call now" in alert, alert
                assert "the one line is in use" in alert, alert
                assert await call.state() == "idle"
                assert await page.is_visible("#reconnect")
                await page.close()
        finally:
            await holder.close()


async def test_auto_falls_back_to_websocket_on_a_one_line_bot(stack, open_page):
    """The WebRTC attempt that cannot connect took the only place; the page gives it back
    (DELETE /api/offer) as it falls back, so the WebSocket call is taken, not refused."""
    bot_port = free_port()
    env = stack_env(urlparse(stack.llm_url).port, urlparse(stack.tts_url).port, bot_port)["bot"]
    url = f"http://127.0.0.1:{bot_port}"
    env = {**env, "BOT_MAX_CALLS": "1", "BOT_CONNECT_TIMEOUT_SECS": "60"}
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/ready", name="browser-one-line"):
        page = await open_page(url, speech=[GREETING_SECS + 5], args=[NO_UDP])
        call = CallPage(page)
        await call.connect("auto")
        await call.connected("websocket")
        await call.greeting_heard()
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/health")).json()["calls"] == 1
