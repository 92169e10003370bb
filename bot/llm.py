"""The bot's LLM client: any OpenAI-compatible server, answers cut by `AnswerGuard`, and a
deadline on every answer.

When the guard ends an answer, the stream is closed at once: the server stops generating (a
llama.cpp slot, an Ollama or vLLM request freed), rather than writing on to the token limit
while the CPU is needed for speech.

Only the last BOT_HISTORY_TURNS exchanges of the call are sent, after the persona (`recent`).

On a llama.cpp server each call keeps to one slot (`slot`, sent as `id_slot`): the server
otherwise gives a request the slot whose cached prompt is most like it, and since every call
starts with the same persona, and the window drops an exchange after every answer, two calls
then overwrite each other's cache (measured: the LLM stage went from ~0.18 s to ~0.6 s median,
over 1 s for half the turns, with two calls on one server).

`prime` has the server read a conversation into its prompt cache, so that the caller's next
question is all that is left to read when it comes: after the greeting, as soon as each answer
is written (the bot then speaks for seconds, time enough to read the window as the next question
will find it, its oldest exchange gone), and once the answer is spoken (cut short by the caller,
it differs). It goes through the answers' own client, whose first request in a call costs
~150 ms more than the next (measured on two cores), and one at a time: a second at once would
take another server slot.

A server that sends nothing for LLM_TIMEOUT_SECS (before the first token, or between two; or three
times its usual first token, if longer: `Pace`), and whose `GET /health` does not answer (a slow
model reading a long prompt does; a stopped or unreachable server does not; 60 s at most), is
treated as down: the stream is closed, so nothing it writes later can be spoken after the turn
has moved on, and the failure reaches the call like a refused connection would (an apology, one
message to the page, a watch for its return). The deadlines wait on the request in a task of its
own (`within`, bot/deadlines.py), never `asyncio.wait_for`: Pipecat replaces that with `wait_for2` (Python < 3.12),
which on a cancellation landing just as the request returns drops the open stream unclosed, and
llama.cpp then writes a withdrawn answer to its end in the call's slot (seen: 120 tokens, 3.7 s,
with the confirmed answer waiting behind it); a stream that opens as the wait ends is closed.

An answer still unwritten `filler_secs` (or one and a half times the model's usual wait) after
its turn was confirmed gets a short spoken filler ("Hmm, let me think."), so that a slow or hung
server is not heard as silence; the apology follows at the deadline.

An answer to a turn not yet confirmed goes on to TTS as it is written and is held as speech
(bot/speculation.py). When it is withdrawn, the LLM stops writing it (Pipecat's own handling)
and sends an interruption downstream, so that TTS drops what it made of it too.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import openai
from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    EagerEndOfTurnCancelFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    TTSSpeakFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.openai.llm import OpenAILLMService

from bot import pipecat_compat
from bot.answers import AnswerGuard, words
from bot.deadlines import AnswerStream, Pace, within
from bot.speculation import SpeakingGate
from bot.stt import WordsSoFarFrame


def recent(messages: list[dict], turns: int) -> list[dict]:
    """`messages` with only the last `turns` exchanges before the newest user message (all of
    them when `turns` is 0). The leading system messages stay; an exchange starts at a user
    message, so the greeting goes once the first question is out of view."""
    if turns <= 0:
        return messages
    head = 0
    while head < len(messages) and messages[head].get("role") == "system":
        head += 1
    users = [i for i in range(head, len(messages)) if messages[i].get("role") == "user"]
    asking = bool(users) and all(m.get("role") != "assistant" for m in messages[users[-1] :])
    keep = turns + 1 if asking else turns  # the question being answered is not history
    if len(users) <= keep:
        return messages
    return messages[:head] + messages[users[-keep] :]


def joined(messages: list[dict]) -> list[dict]:
    """`messages` with consecutive user messages joined into one: a caller who went on just
    after the answer began left two (bot/turns.py, `Resumption`), and some chat templates
    refuse two user messages in a row."""
    out: list[dict] = []
    for message in messages:
        previous = out[-1] if out else None
        if (
            previous is not None
            and previous.get("role") == message.get("role") == "user"
            and isinstance(previous.get("content"), str)
            and isinstance(message.get("content"), str)
        ):
            out[-1] = {**previous, "content": f"{previous['content']} {message['content']}"}
        else:
            out.append(message)
    return out


def notes_folded(messages: list[dict]) -> list[dict]:
    """`messages` with every system message after the conversation began (the kit's note that
    the caller cut in) moved into the next user message, in brackets; one with no user message
    after it is left out. For chat templates that refuse a system message after the first
    (Gemma's, some of Mistral's)."""
    out: list[dict] = []
    notes: list[str] = []
    for message in messages:
        late = any(m.get("role") != "system" for m in out)
        if message.get("role") == "system" and late and isinstance(message.get("content"), str):
            notes.append(message["content"])
        elif message.get("role") == "user" and notes and isinstance(message.get("content"), str):
            out.append({**message, "content": f"({' '.join(notes)}) {message['content']}"})
            notes = []
        else:
            out.append(message)
    return out


def has_late_note(messages: list[dict]) -> bool:
    """Whether a system message follows the conversation's first other message."""
    roles = [m.get("role") for m in messages]
    first_other = next((i for i, role in enumerate(roles) if role != "system"), len(roles))
    return "system" in roles[first_other:]


class _AnswerEnded(Exception):
    """The guard has ended the answer; raised through the stream to close it."""


# A cold Ollama model load takes a while; priming is never on a turn's path.
_PRIME_TIMEOUT_SECS = 120.0


_PROBE_SECS = 1.0  # a server busy reading a prompt still answers `GET /health` in milliseconds


class KitLLMService(OpenAILLMService):
    """`OpenAILLMService` whose answers pass through an `AnswerGuard`, under a deadline, reading
    the recent conversation only."""

    def __init__(
        self,
        *,
        guard: AnswerGuard,
        timeout_secs: float,
        history_turns: int = 0,
        slot: int | None = None,
        filler: str = "",
        filler_secs: float = 0.0,
        context: LLMContext | None = None,
        **kwargs: Any,
    ):
        """`filler` is spoken when an answer has no words `filler_secs` after its turn was
        confirmed (none if empty or 0)."""
        super().__init__(**kwargs)
        # Pipecat's gate holds an unconfirmed answer as text; this one lets it through to TTS.
        self._gate = SpeakingGate(name=f"{self}::SpeculationGate")
        pipecat_compat.use_speculation_gate(self, self._gate)
        self._filler = filler
        self._filler_secs = filler_secs
        self._confirmed = asyncio.Event()  # the turn being answered has ended
        self._confirmed_at = 0.0  # when it was
        self._guard = guard
        self._timeout_secs = timeout_secs
        self._history_turns = history_turns
        self._slot = slot
        self._written: list[str] = []  # the current answer, as it passed the guard
        self._writing = (0.0, 0.0, "")  # when the answer's first and latest text came; the text
        self._priming = asyncio.Lock()
        self._reading: asyncio.Task | None = None  # the read-ahead of the latest answer
        self._answer: AnswerStream | None = None  # the latest answer's stream
        self._fold_notes = False  # the server's chat template refused a late system message
        self._pace = Pace.of(str(self._openai.base_url), self.settings.model or "")
        self._context = context  # the call's conversation, for reading the caller's words ahead
        self._answering = False  # an answer is being written
        self._bot_speaking = False
        self._reading_ahead: asyncio.Task | None = None
        self._probe = httpx.AsyncClient()  # asks a slow server whether it is still working

    @property
    def _openai(self) -> openai.AsyncOpenAI:
        """The OpenAI client Pipecat's service made: the kit's own requests go through it too."""
        return pipecat_compat.openai_client(self)

    def build_chat_completion_params(self, params_from_context: Any) -> dict:
        params = super().build_chat_completion_params(params_from_context)
        params["messages"] = self._shaped(list(params["messages"]))
        return {**params, **self._slot_body(params.get("extra_body"))}

    def _shaped(self, messages: list[dict]) -> list[dict]:
        """The messages as sent: the window, consecutive user messages joined, and the notes
        folded into the caller's words where the template wants that."""
        if self._fold_notes:
            messages = notes_folded(messages)
        return recent(joined(messages), self._history_turns)

    def _refused(self, messages: list[Any]) -> bool:
        """After a 400 (llama.cpp's and vLLM's answer to a template that raised): whether the
        cut-in note may be why; if so, it goes into the caller's words from now on, this call."""
        if self._fold_notes or not has_late_note(messages):
            return False
        self._fold_notes = True
        logger.info(
            f"{self}: the model's chat template refuses a system message after the first; "
            "the cut-in note now goes into the caller's next message"
        )
        return True

    def _slot_body(self, extra_body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The request's `extra_body` (the settings' own, if any) with the call's slot."""
        if self._slot is None:
            return {"extra_body": extra_body} if extra_body else {}
        return {"extra_body": {**(extra_body or {}), "id_slot": self._slot}}

    async def get_chat_completions(self, context: LLMContext) -> Any:
        asked = time.monotonic()
        deadline = self._pace.deadline(self._timeout_secs)

        async def opened() -> Any:
            try:
                return await super(KitLLMService, self).get_chat_completions(context)
            except openai.BadRequestError:
                if not self._refused(list(context.get_messages())):
                    raise
                return await super(KitLLMService, self).get_chat_completions(context)

        async def close(stream: Any) -> None:
            await stream.close()

        # The words metrics.py files as a timeout.
        stream = await within(deadline, opened(), self._working, "did not answer within", close)
        self._answer = AnswerStream(stream, deadline, self._working)
        self._answer.on_first = lambda: self._pace.first_token.append(time.monotonic() - asked)
        return self._answer

    async def _working(self) -> bool:
        """Whether the server is still there: its `GET /health` answers (llama.cpp's and vLLM's
        HTTP threads answer it while the model reads a long prompt, which holds up everything
        else llama.cpp answers; a stopped, killed or unreachable server does not). Ollama, which
        has no such endpoint, gets no more than the deadline."""
        root = str(self._openai.base_url).rstrip("/").removesuffix("/v1")
        try:
            async with asyncio.timeout(_PROBE_SECS):
                response = await self._probe.get(f"{root}/health")
        except (httpx.HTTPError, TimeoutError):
            return False
        return response.status_code == 200

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, WordsSoFarFrame):
            self.read_ahead(frame.text)
            return  # for the LLM alone
        if isinstance(frame, (BotStartedSpeakingFrame, BotStoppedSpeakingFrame)):
            self._bot_speaking = isinstance(frame, BotStartedSpeakingFrame)
        if isinstance(frame, LLMContextFrame):
            # Set before the answer is written (the base class writes it in this call).
            if frame.speculation:
                self._confirmed.clear()
            else:
                self._written = []  # a new answer: the last one's words are not its own
                self._confirm()
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._confirm()
        withdrawn = isinstance(frame, EagerEndOfTurnCancelFrame) and self._gate.is_speculating
        await super().process_frame(frame, direction)
        if withdrawn:
            # As when the caller cuts into speech: TTS drops the answer, HeldSpeech what it held.
            await self.push_frame(InterruptionFrame())

    def read_ahead(self, words: str) -> None:
        """Have the server read the caller's words so far, after the conversation, into the
        call's slot while they speak: at the turn's end only their last words are left to read
        (llama.cpp keeps the longest common prefix, so words the final transcript changes are
        read again). Skipped while an answer is written, spoken (the conversation lacks it yet:
        the slot's cache of it would be overwritten) or read."""
        busy = self._reading_ahead is not None and not self._reading_ahead.done()
        if self._context is None or self._slot is None or busy or self._priming.locked():
            return
        if self._answering or self._bot_speaking:
            return
        messages = [*self._context.get_messages(), {"role": "user", "content": words}]
        self._reading_ahead = self.create_task(self._read_ahead(messages), f"{self}::read-ahead")

    async def _read_ahead(self, messages: list[Any]) -> None:
        try:
            async with asyncio.timeout(_PRIME_TIMEOUT_SECS):
                await self._read(messages)  # llama.cpp writes one token at least
        except (openai.OpenAIError, httpx.HTTPError, TimeoutError) as error:
            logger.debug(f"{self}: read-ahead skipped: {error.__class__.__name__}")

    async def _process_context(self, context: LLMContext) -> None:
        # Pipecat's private per-answer step (bot/pipecat_compat.py).
        self._context = context
        self._answering = True
        try:
            await self._answer_context(context)
        finally:
            self._answering = False

    async def _answer_context(self, context: LLMContext) -> None:
        self._guard.reset()
        self._written = []
        self._writing = (0.0, 0.0, "")
        self._answer = None
        filler = None
        if self._filler and self._filler_secs:
            filler = self.create_task(self._fill_silence(), f"{self}::filler")
        try:
            await super()._process_context(context)
        except _AnswerEnded:
            logger.debug(f"{self}: answer ended by the guard; generation stopped")
        finally:
            if filler is not None:
                await self.cancel_task(filler)
        self._measure_writing()
        cut_short = self._answer is not None and self._answer.finish_reason == "length"
        if rest := self._guard.flush(complete=not cut_short):
            await self._pass_on(rest)
        messages: list[Any] = list(context.get_messages())
        answered = bool(messages) and messages[-1].get("role") == "assistant"
        if (answer := "".join(self._written).strip()) and not answered:
            messages.append({"role": "assistant", "content": answer})
            self._reading = self.create_task(self.prime(messages), f"{self}::prime")

    def _measure_writing(self) -> None:
        """Words a second, first to last, of an answer long enough to tell; said once per
        server when that is slower than speech."""
        first, last, text = self._writing
        count = len(words(text))
        if count < 8 or last <= first:
            return
        self._pace.words_per_sec.append((count - 1) / (last - first))
        if self._pace.slower_than_speech() and not self._pace.warned:
            self._pace.warned = True
            logger.warning(
                f"the LLM writes {statistics.median(self._pace.words_per_sec):.1f} words a second"
                f" here, slower than the bot speaks (~{Pace.SPEECH_WORDS_PER_SEC:g}): answers "
                "will pause mid-sentence; a smaller model or more cores (docs/llm.md)"
            )

    async def cleanup(self) -> None:
        """The call is over: no read-ahead outlives it, nor the client's connections (one client
        per call, which would otherwise keep its sockets to the server open)."""
        for task in (self._reading, self._reading_ahead):
            if task is not None and not task.done():
                await self.cancel_task(task)
        await super().cleanup()
        await self._openai.close()
        await self._probe.aclose()

    async def prime(self, messages: list[Any]) -> None:
        """Have the server read `messages`, in the answers' window, into its prompt cache."""
        if self._openai.is_closed():  # the call ended as its last answer was spoken
            return
        async with self._priming:
            try:
                async with asyncio.timeout(_PRIME_TIMEOUT_SECS):
                    try:
                        await self._read(messages)
                    except openai.BadRequestError:
                        if not self._refused(messages):
                            raise
                        await self._read(messages)
            except (openai.OpenAIError, httpx.HTTPError, TimeoutError) as error:
                logger.debug(f"{self}: priming skipped: {error.__class__.__name__}")

    async def _read(self, messages: list[Any]) -> None:
        """One request that has the server read `messages` and write a single token."""
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": self._shaped(messages),
            "max_tokens": 1,
            "stream": True,
            **self._slot_body(),
        }
        stream = await self._openai.chat.completions.create(**body)
        async with stream:
            async for _ in stream:
                pass

    async def _fill_silence(self) -> None:
        """Say the filler if the answer has no words `filler_secs` after its turn ended (longer
        for a model that usually takes longer: `Pace`)."""
        await self._confirmed.wait()
        wait = self._pace.filler_after(self._filler_secs)
        await asyncio.sleep(wait)
        if not self._written:
            logger.debug(f"{self}: no words after {wait:g} s; saying the filler")
            await self.push_frame(TTSSpeakFrame(self._filler, append_to_context=False))

    async def _push_llm_text(self, text: str) -> None:
        # Pipecat's private: every piece of the answer's text passes here (bot/pipecat_compat.py).
        now = time.monotonic()
        self._writing = (self._writing[0] or now, now, self._writing[2] + text)
        if spoken := self._guard.feed(text):
            await self._pass_on(spoken)
        if self._guard.stopped:
            raise _AnswerEnded

    def _confirm(self) -> None:
        """The turn being answered has ended: from now the caller waits for words (`Pace`)."""
        if self._confirmed.is_set():
            return
        self._confirmed.set()
        self._confirmed_at = time.monotonic()
        if self._written:  # an early answer had its words ready
            self._pace.first_words.append(0.0)

    async def _pass_on(self, text: str) -> None:
        if not self._written and self._confirmed.is_set():
            self._pace.first_words.append(time.monotonic() - self._confirmed_at)
        self._written.append(text)
        await super()._push_llm_text(text)
