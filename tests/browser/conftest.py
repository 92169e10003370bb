"""Headless Chromium (the OS's, never Playwright's download) driving the bot's page.

The microphone is either Chromium's fake capture device reading a WAV file once (`%noloop`:
silence or recordings from tests/fixtures/questions), or, for conversations, a stream the test
plays each question into once the page shows the bot has finished speaking (pages.Microphone).
"""

from __future__ import annotations

import os
import shutil
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Playwright, async_playwright

from tests.browser.pages import MIC_SCRIPT, RATE, question_pcm
from tests.support import ARTIFACTS

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


def spoken(path: Path, parts: list[str | float]) -> Path:
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
    async with async_playwright() as p:
        yield p


@pytest_asyncio.fixture
async def open_page(
    playwright: Playwright, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable]:
    """`await open_page(url, speech=[...], mic=False, fake_ui=True, args=[])` → a Page on a
    fresh browser. `speech`: the fake microphone plays that once, from the start; `mic=True`: it
    is silent until the test speaks into it (pages.Microphone).

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
            wav = spoken(tmp_path / f"mic-{len(browsers)}.wav", speech)
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
