"""The page as the tests see it: what a person would read, and the data-* state it mirrors."""

from __future__ import annotations

import json

from playwright.async_api import Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

# A level (0..1, -60 dBFS → 0) the bot's voice clearly exceeds and silence never reaches.
AUDIBLE = 0.3


class CallPage:
    def __init__(self, page: Page):
        self.page = page

    async def until(self, expression: str, what: str, timeout_s: float = 60, arg=None) -> None:
        """Wait until the JS `expression` is truthy; on timeout, fail with what the page shows."""
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
        """Each turn's bar: its total as shown, and each stage's milliseconds."""
        return await self.page.eval_on_selector_all(
            "#bars .bar-row",
            """rows => rows.map((row) => ({
                turn: Number(row.dataset.turn),
                total: row.querySelector(".bar-total").textContent,
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
