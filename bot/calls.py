"""The calls in progress: each runs as its own task, so one call's failure never ends another."""

from __future__ import annotations

import asyncio
import gc
import itertools
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable

import aiohttp
from loguru import logger
from pipecat.transports.base_transport import BaseTransport

from bot.config import Settings
from bot.health import llm_slots
from bot.metrics import BotMetrics
from bot.models import SpeechModel
from bot.options import CallOptions, Choices
from bot.persona_cache import PersonaCache
from bot.pipeline import CallReport, run_call

_SECOND_PASS_SECS = 2.0


def _collect_garbage(call_id: str) -> None:
    """Free what the call left in reference cycles now, not at the interpreter's next full pass.

    aiortc's peer connections, tracks and codecs hold each other in cycles, and each codec keeps
    FFmpeg worker threads: without this, threads and memory climb call after call until a full
    collection happens to run. With the start-up objects frozen (`freeze_startup_objects`), a
    pass takes some 20-40 ms on a 2-core machine, once per call.
    """
    started = time.perf_counter()
    found = gc.collect()
    logger.debug(f"[{call_id}] {found} objects collected in {time.perf_counter() - started:.3f}s")


def freeze_startup_objects() -> None:
    """Exclude what exists once the models are loaded from every later collection."""
    gc.collect()
    gc.freeze()


class CallManager:
    """Holds what calls share (settings, Whisper, one HTTP session) and the running call tasks.

    A transport takes a place with `admit()` before it negotiates any media, and hands it to
    `start()` (or back with `release()`): two callers arriving together cannot both take the
    last place while their offers are still being answered.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.places = settings.max_calls
        self.speech: SpeechModel | None = None
        self.session: aiohttp.ClientSession | None = None
        self.tasks: dict[str, asyncio.Task[CallReport | None]] = {}
        self.choices = Choices(settings)
        self.finished: deque[CallReport] = deque(maxlen=100)  # recent calls, for /ready and tests
        self.refused = 0  # calls turned away because every place was taken
        self._admitted = 0  # places taken by calls still negotiating
        self._llm_slots: int | None = None  # the llama.cpp server's slots, once it has answered
        self._llm_slots_taken: set[int] = set()
        self.persona = PersonaCache(settings)
        self.metrics = BotMetrics(lambda: self.active, self.places)
        self._numbers = itertools.count(1)

    @property
    def ready(self) -> bool:
        return self.speech is not None and self.session is not None

    @property
    def active(self) -> int:
        """Calls running or negotiating."""
        return len(self.tasks) + self._admitted

    def busy_message(self) -> str:
        lines = "the one line is" if self.places == 1 else f"all {self.places} lines are"
        return f"the bot is busy: {lines} in use; try again when a call ends"

    def has_room(self) -> bool:
        """Whether a new call would be taken now; False counts it as refused."""
        if self.active < self.places:
            return True
        self.refused += 1
        self.metrics.refused.inc()
        logger.info(f"call refused: {self.active} of {self.places} places taken")
        return False

    def admit(self) -> bool:
        """Take a place for a new call, if one is free; False counts the call as refused."""
        if not self.has_room():
            return False
        self._admitted += 1
        return True

    def release(self) -> None:
        """Give back a place taken by `admit()` for a call that will not start."""
        self._admitted = max(0, self._admitted - 1)

    async def options(self, raw: object) -> CallOptions:
        """The caller's choices, checked (raises BadOptions naming the field)."""
        assert self.speech is not None and self.session is not None
        return await self.choices.resolve(raw, self.session, self.speech)

    def start(
        self,
        transport: BaseTransport,
        options: CallOptions,
        *,
        kind: str,
        hang_up: Callable[[], Awaitable[object]] | None = None,
    ) -> asyncio.Task[CallReport | None]:
        """Run an admitted call in the background, in the place it took; `hang_up` closes the
        transport's connection however the call ends. The task is named by the call's id
        (never a secret)."""
        assert self.speech is not None and self.session is not None
        self.release()
        call_id = f"{kind}-{next(self._numbers)}-{secrets.token_hex(2)}"
        self.metrics.calls.labels(kind).inc()
        task = asyncio.create_task(
            self._run(transport, options, call_id, hang_up, self.speech, self.session), name=call_id
        )
        self.tasks[call_id] = task
        return task

    async def _run(
        self,
        transport: BaseTransport,
        options: CallOptions,
        call_id: str,
        hang_up: Callable[[], Awaitable[object]] | None,
        speech: SpeechModel,
        session: aiohttp.ClientSession,
    ) -> CallReport | None:
        slot = None
        try:
            slot = await self._take_llm_slot(session)
            if slot is not None:
                await self.persona.restore(session, slot, options.prompt)
            report = await run_call(
                transport,
                self.settings,
                speech,
                session,
                options,
                call_id=call_id,
                metrics=self.metrics,
                llm_slot=slot,
            )
            self.finished.append(report)
            return report
        except asyncio.CancelledError:
            raise
        except Exception:  # one call's bug, whatever it is, must not end the others
            logger.exception(f"[{call_id}] call crashed; other calls continue")
            return None
        finally:
            if hang_up is not None:
                try:
                    await hang_up()
                # The transport's own hang-up (aiortc's, say) may raise anything; the call is
                # over either way.
                except Exception as error:
                    logger.info(f"[{call_id}] hanging up failed: {error.__class__.__name__}")
                    logger.opt(exception=error).debug(f"[{call_id}] hanging up failed")
            self.tasks.pop(call_id, None)
            if slot is not None:
                self._llm_slots_taken.discard(slot)
            _collect_garbage(call_id)
            # aiortc finishes closing a peer connection in tasks of its own, after the hang-up:
            # what they still held is garbage a moment later, and its FFmpeg threads would
            # otherwise live on until the next call ends.
            asyncio.get_running_loop().call_later(_SECOND_PASS_SECS, _collect_garbage, call_id)

    async def warm_llm(self) -> None:
        """Have the LLM server read the default persona before the first call needs it
        (bot/persona_cache.py), as soon as it answers."""
        assert self.session is not None
        while self._llm_slots is None:
            self._llm_slots = await llm_slots(self.session, self.settings)
            if self._llm_slots is None:
                await asyncio.sleep(2)
        await self.persona.warm(self.session, self._llm_slots)

    async def _take_llm_slot(self, session: aiohttp.ClientSession) -> int | None:
        """The lowest llama.cpp slot that no other call keeps to; None for other servers, when
        every slot is kept, or beside other replicas, which cannot see which slots this one
        keeps (llama.cpp then gives each request the idle slot whose cache matches it best)."""
        if self.settings.bot_replicas > 1:
            return None
        if self._llm_slots is None:  # asked once per process, again only while unanswered
            self._llm_slots = await llm_slots(session, self.settings)
        free = [n for n in range(self._llm_slots or 0) if n not in self._llm_slots_taken]
        if not free:
            return None
        self._llm_slots_taken.add(free[0])
        return free[0]

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self.session is not None:
            await self.session.close()
