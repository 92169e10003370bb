"""Conversations in a real browser: WebRTC, the WebSocket alternative, and the automatic fallback.

Each test speaks recorded questions into the page's microphone, each once the page shows the bot
has finished speaking, and reads the page as a person would: the greeting's sound (measured in the
page), the transcript, the bot's answer, and a latency bar with every stage. The tiny LLM's answers
are fluent but unreliable, so only their presence is checked.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.support import ARTIFACTS, ROOT, words
from tests.support.browser import NO_UDP, CallPage, Microphone

pytestmark = pytest.mark.browser

STAGES = {"endpointing", "stt", "llm", "tts", "rest"}


async def ask(call: CallPage, question: str) -> None:
    """Once the bot has finished speaking (the greeting or its last answer), ask `question`."""
    await call.quiet()
    await Microphone(call.page).say(question)


async def assert_turn(call: CallPage, turn: int, question: tuple[str, ...]) -> None:
    """Turn `turn` is on the page: the question as recognized, an answer, a full latency bar."""
    await call.user_lines_at_least(turn)
    heard = words((await call.lines("user"))[turn - 1])
    assert all(w in heard for w in question), heard
    await call.bars_at_least(turn)
    bar = (await call.bars())[turn - 1]
    assert bar["turn"] == turn
    assert set(bar["stages"]) == STAGES
    # Whisper's, the LLM's and TTS's stages may be 0: the transcript made at the first pause,
    # and the answer started on it, can be ready, its first audio too, before the turn ends.
    assert all(bar["stages"][stage] >= 0 for stage in ("stt", "llm", "tts")), bar
    assert bar["stages"]["endpointing"] > 0, bar
    assert bar["total"].endswith(" ms") and int(bar["total"].split()[0]) > 0, bar
    # The page's own measure, from the microphone's level to the bot's (both network legs and
    # the playout in it), shown beside the bot's figure.
    await call.until(
        "n => document.querySelector(`#bars .bar-row[data-turn='${n}']`)?.dataset.heardMs",
        "the latency heard in the page",
        10,
        turn,
    )
    heard = (await call.bars())[turn - 1]["heard"]
    assert heard is not None and heard > 0, (heard, bar)
    assert "heard" in await call.page.inner_text("#stat-median")
    await call.bot_lines_at_least(turn + 1)  # the greeting, then one answer per turn
    assert (await call.lines("bot"))[turn].strip()


async def test_two_turns_over_webrtc(stack, open_page):
    page = await open_page(stack.bot_url, mic=True, viewport={"width": 1280, "height": 960})
    call = CallPage(page)
    await call.connect("webrtc")
    await call.connected("webrtc")
    await call.greeting_heard()

    await ask(call, "france")
    await assert_turn(call, 1, ("capital", "france"))
    await ask(call, "sky")
    await assert_turn(call, 2, ("sky", "blue"))
    assert "–" not in await page.inner_text("#stat-median")
    assert await page.inner_text("#stat-turns") == "2"
    assert not await call.alert(), await call.alert()

    # The finished conversation, as the README shows it.
    await call.quiet()
    await page.evaluate("document.activeElement?.blur()")
    await page.mouse.move(0, 0)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "conversation.png", full_page=True)
    if os.environ.get("UPDATE_SCREENSHOT"):
        shutil.copy(ARTIFACTS / "conversation.png", ROOT / "docs" / "screenshot.png")
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path=ARTIFACTS / "conversation-phone.png", full_page=True)

    # The figures download as JSON.
    async with page.expect_download() as download:
        await page.click("#download")
    path = await (await download.value).path()
    figures = json.loads(path.read_text())
    assert [t["turn"] for t in figures["turns"]] == [1, 2]
    assert figures["call"]["transport"] == "webrtc"
    assert figures["summary"]["total_ms"]["median"] > 0


async def test_one_turn_over_websocket(stack, open_page):
    page = await open_page(stack.bot_url, mic=True)
    call = CallPage(page)
    # From the keyboard: choose the transport, then Enter on Connect.
    await page.focus("#transport")
    await page.select_option("#transport", "websocket")
    await page.focus("#connect")
    await page.keyboard.press("Enter")
    await call.connected("websocket")
    assert await page.evaluate("document.activeElement.id") == "disconnect"

    await call.greeting_heard()
    await ask(call, "france")
    await assert_turn(call, 1, ("capital", "france"))


async def test_auto_falls_back_to_websocket_when_webrtc_cannot_connect(stack, open_page):
    # WebRTC gets no local candidates; the page gives up on it after webrtc_timeout_ms (5 s).
    page = await open_page(stack.bot_url, mic=True, args=[NO_UDP])
    call = CallPage(page)
    await call.connect("auto")
    await call.connected("websocket")
    assert "WebRTC could not connect" in await page.inner_text("#log")
    await call.greeting_heard()
    await ask(call, "france")
    await assert_turn(call, 1, ("capital", "france"))


async def test_controls_are_labelled(stack, open_page):
    page = await open_page(stack.bot_url)
    for role, name in [
        ("button", "Connect"),
        ("button", "Mute"),
        ("button", "Download JSON"),
        ("combobox", "Microphone"),
        ("combobox", "Voice"),
        ("combobox", "Language"),
        ("combobox", "Connection"),
        ("textbox", "Persona prompt"),
        ("meter", "You"),
        ("meter", "Miss Harper"),
    ]:
        assert await page.get_by_role(role, name=name, exact=True).count() == 1, (role, name)
    config = await page.evaluate("JSON.parse(document.getElementById('kit-config').textContent)")
    assert await page.input_value("#prompt") == config["default_prompt"]
    assert await page.get_attribute("#prompt", "maxlength") == str(config["max_prompt_chars"])
