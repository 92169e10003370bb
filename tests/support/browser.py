"""Headless Chromium (the OS's, never Playwright's download) driving the bot's page, and the
page as the tests see it: what a person would read, and the data-* state it mirrors.

The microphone is either Chromium's fake capture device reading a WAV file once (`%noloop`:
silence or recordings from tests/fixtures/questions), or, for conversations, a stream the test
plays each question into once the page shows the bot has finished speaking (`Microphone`).

Also a pytest plugin (tests/conftest.py's `pytest_plugins`): the `open_page` fixture, for
tests/browser and the Docker suite's browser tests alike. Playwright is imported only when a
test drives a page.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from tests.support import ARTIFACTS, FIXTURES

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
# No local ICE candidates at all: WebRTC cannot connect, as behind a UDP-blocking firewall.
NO_UDP = "--webrtc-ip-handling-policy=disable_non_proxied_udp"

# A level (0..1, -60 dBFS → 0) the bot's voice clearly exceeds and silence never reaches.
AUDIBLE = 0.3
QUESTIONS = FIXTURES / "questions"
RATE = 16000

# Installed before the page's own scripts: getUserMedia gives a Web Audio stream that is silent
# until the test has `window.kitMic.say(pcm)` play a recording into it, so that each question is
# asked when the page shows it is time, however long the bot spoke before.
MIC_SCRIPT = """
(() => {
  const context = { audio: null, destination: null };
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    if (!constraints || !constraints.audio) return getUserMedia(constraints);
    context.audio = context.audio || new AudioContext();
    await context.audio.resume();
    // One stream per request: the page stops the tracks of the one it replaces.
    context.destination = context.audio.createMediaStreamDestination();
    return context.destination.stream;
  };
  window.kitMic = {
    /** Play 16 kHz s16le mono PCM (base64) into the microphone; resolves when it has played. */
    say(pcm64, rate) {
      const bytes = Uint8Array.from(atob(pcm64), (c) => c.charCodeAt(0));
      const samples = new Int16Array(bytes.buffer);
      const buffer = context.audio.createBuffer(1, samples.length, rate);
      buffer.getChannelData(0).set(Float32Array.from(samples, (s) => s / 32768));
      const source = context.audio.createBufferSource();
      source.buffer = buffer;
      source.connect(context.destination);
      return new Promise((resolve) => {
        source.onended = resolve;
        source.start();
      });
    },
  };
})();
"""


def question_pcm(name: str) -> bytes:
    """A recorded question from tests/fixtures/questions: 16 kHz s16le mono PCM."""
    with wave.open(str(QUESTIONS / f"{name}.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return w.readframes(w.getnframes())


class Microphone:
    """The page's microphone (a page opened with `mic=True`), spoken into by the test."""

    def __init__(self, page: Page):
        self.page = page

    async def say(self, question: str) -> None:
        """Ask a recorded question; returns once it has been played into the call."""
        pcm64 = base64.b64encode(question_pcm(question)).decode()
        await self.page.evaluate("([pcm, rate]) => window.kitMic.say(pcm, rate)", [pcm64, RATE])


class CallPage:
    def __init__(self, page: Page):
        self.page = page

    async def until(self, expression: str, what: str, timeout_s: float = 60, arg=None) -> None:
        """Wait until the JS `expression` is truthy; on timeout, fail with what the page shows."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            await self.page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000)
        except PlaywrightTimeout:
            raise AssertionError(
                f"waited {timeout_s:.0f}s for {what}; page:\n{await self.describe()}"
            ) from None

    async def describe(self) -> str:
        state = await self.page.evaluate(
            """() => ({
                state: document.body.dataset.state,
                transport: document.body.dataset.transport,
                activity: document.body.dataset.activity,
                status: document.getElementById("state").textContent,
                alert: document.getElementById("alert").hidden ? null : document.getElementById("alert").innerText,
                log: [...document.querySelectorAll("#log li")].map((li) => `${li.className}: ${li.innerText}`),
                bars: document.querySelectorAll("#bars .bar-row").length,
            })"""
        )
        return json.dumps(state, indent=2, ensure_ascii=False)

    async def connect(self, transport: str = "auto") -> None:
        await self.page.select_option("#transport", transport)
        await self.page.click("#connect")

    async def state(self) -> str:
        return await self.page.evaluate("document.body.dataset.state")

    async def transport(self) -> str:
        return await self.page.evaluate("document.body.dataset.transport")

    async def alert(self) -> str:
        return await self.page.inner_text("#alert") if await self.page.is_visible("#alert") else ""

    async def lines(self, who: str) -> list[str]:
        """The log's lines of "user" or "bot", without the speaker's label."""
        return await self.page.eval_on_selector_all(
            f"#log li.{who} .text", "items => items.map((e) => e.textContent)"
        )

    async def bot_peak(self) -> float:
        return float(await self.page.get_attribute("#bot-level", "data-peak") or 0)

    async def bars(self) -> list[dict]:
        """Each turn's bar: its total as shown, each stage's milliseconds, and the latency heard
        in the page (None until measured)."""
        return await self.page.eval_on_selector_all(
            "#bars .bar-row",
            """rows => rows.map((row) => ({
                turn: Number(row.dataset.turn),
                total: row.querySelector(".bar-total").textContent,
                heard: row.dataset.heardMs === undefined ? null : Number(row.dataset.heardMs),
                stages: Object.fromEntries([...row.querySelectorAll(".segment")].map(
                    (s) => [s.dataset.stage, Number(s.dataset.ms)])),
            }))""",
        )

    # ---- waits for the moments of a call ---------------------------------------------------

    async def connected(self, transport: str, timeout_s: float = 30) -> None:
        await self.until(
            "t => document.body.dataset.state === 'connected' && document.body.dataset.transport === t",
            f"a call over {transport}",
            timeout_s,
            arg=transport,
        )

    async def bot_lines_at_least(self, n: int, timeout_s: float = 60) -> None:
        await self.until(
            "n => [...document.querySelectorAll('#log li.bot .text')].filter((e) => e.textContent.trim()).length >= n",
            f"{n} line(s) from the bot",
            timeout_s,
            arg=n,
        )

    async def greeting_heard(self, bot_lines: int = 1) -> None:
        """The greeting's words are shown (as line `bot_lines` of the bot) and its sound reached
        the page's analyser (whose peak starts at 0 with each call)."""
        await self.bot_lines_at_least(bot_lines, 60)
        await self.until(
            f"Number(document.getElementById('bot-level').dataset.peak) > {AUDIBLE}",
            "the greeting's sound in the page",
            30,
        )

    async def user_lines_at_least(self, n: int, timeout_s: float = 60) -> None:
        await self.until(
            "n => document.querySelectorAll('#log li.user:not(.interim)').length >= n",
            f"{n} recognized question(s)",
            timeout_s,
            arg=n,
        )

    async def bars_at_least(self, n: int, timeout_s: float = 60) -> None:
        await self.until(
            "n => document.querySelectorAll('#bars .bar-row').length >= n",
            f"{n} latency bar(s)",
            timeout_s,
            arg=n,
        )

    async def quiet(self, timeout_s: float = 90) -> None:
        """The bot has finished speaking and listens again."""
        await self.until(
            "document.body.dataset.activity === 'listening'", "the bot to finish", timeout_s
        )


# ---- the plugin: a fresh Chromium per page, a screenshot and the console when a test fails ----


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which(CHROMIUM) is None:
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (set CHROMIUM)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


def speech_wav(path: Path, parts: list[str | float]) -> Path:
    """A 16 kHz mono WAV: each part is a question's name (tests/fixtures/questions) or seconds
    of silence."""
    pcm = b""
    for part in parts:
        pcm += question_pcm(part) if isinstance(part, str) else b"\0\0" * int(part * RATE)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return path


@pytest_asyncio.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        yield p


@pytest_asyncio.fixture
async def open_page(
    playwright: Playwright, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable]:
    """`await open_page(url, speech=[...], mic=False, fake_ui=True, args=[])` → a Page on a
    fresh browser. `speech`: the fake microphone plays that once, from the start; `mic=True`: it
    is silent until the test speaks into it (`Microphone`).

    Console output and uncaught errors are kept; a failing test leaves a screenshot and the
    console in test-artifacts/browser-<test>.{png,log}.
    """
    browsers: list[Browser] = []
    pages: list[tuple[Page, list[str]]] = []

    async def launch(
        url: str,
        *,
        speech: list[str | float] | None = None,
        mic: bool = False,
        fake_ui: bool = True,
        args: list[str] | None = None,
        viewport: dict | None = None,
    ) -> Page:
        media = list(FAKE_MEDIA) if fake_ui else ["--use-fake-device-for-media-stream"]
        if speech is not None:
            wav = speech_wav(tmp_path / f"mic-{len(browsers)}.wav", speech)
            media.append(f"--use-file-for-fake-audio-capture={wav}%noloop")
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*BASE_ARGS, *media, *(args or [])]
        )
        browsers.append(browser)
        context = await browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
        if mic:
            await context.add_init_script(MIC_SCRIPT)
        page = await context.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        pages.append((page, console))
        await page.goto(url)
        return page

    yield launch

    if request.node.stash.get(FAILED, False):
        ARTIFACTS.mkdir(exist_ok=True)
        for i, (page, console) in enumerate(pages):
            name = f"browser-{request.node.name}-{i}"
            try:
                await page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
            except Exception as error:  # the page may be gone
                console.append(f"(no screenshot: {error})")
            (ARTIFACTS / f"{name}.log").write_text("\n".join(console))
    for browser in browsers:
        await browser.close()
