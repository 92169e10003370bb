"""The bot's client for the kit's TTS server (the XTTS v2 streaming contract).

Pipecat's stock `XTTSService` also works against the server (the contract tests prove it), but
it strips every "." from the text, hands audio on in one-second blocks, and never retries the
studio-speaker lookup after a failed start. This client forwards audio as it arrives, keeps
the text intact, and fetches the voice's latents again whenever the server comes back.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.errors import ErrorCategory

from bot import pipecat_compat
from bot.text import FirstClauseAggregator

SERVER_RATE = 24000  # the contract's output rate


class TTSServerUnavailable(Exception):
    """The TTS server could not be reached or refused the studio-speaker lookup."""


def _dropped(error: Exception) -> bool:
    """The connection failed or closed under the request (not a timeout, not a refusal)."""
    return isinstance(error, aiohttp.ClientConnectionError) and not isinstance(error, TimeoutError)


class KitTTSService(TTSService):
    """Streams speech from a server speaking `/studio_speakers` + `/tts_stream`."""

    def __init__(
        self,
        *,
        base_url: str,
        voice: str,
        language: str,
        session: aiohttp.ClientSession,
        timeout_secs: float = 5.0,
        **kwargs: Any,
    ):
        """`voice` is a studio-speaker name; empty picks the server's first voice. A server
        that sends nothing for `timeout_secs` (no first audio, or a stream that stops) counts as
        unreachable: the request is dropped, so audio it sends late is never played."""
        super().__init__(
            sample_rate=SERVER_RATE,
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=voice or None, language=None),
            **kwargs,
        )
        # Pipecat's sentence aggregator with an earlier first cut (see bot/text.py).
        stock = pipecat_compat.text_aggregator(self)
        self._cutter = FirstClauseAggregator(
            aggregation_type=stock.aggregation_type, language=stock.language
        )
        pipecat_compat.use_text_aggregator(self, self._cutter)
        self._base_url = base_url
        self._voice = voice
        self._language = language
        self._session = session
        self._timeout = aiohttp.ClientTimeout(sock_connect=timeout_secs, sock_read=timeout_secs)
        # The voice's latents as they go in every request body: ~33,000 numbers, encoded once
        # per voice rather than once per sentence (~4 ms of the bot's loop each time).
        self._latents: str | None = None
        self._failed_contexts: set[str] = set()  # failures already reported in words
        # The answer whose server went away part-way: the rest of it is not spoken, since a
        # caller who missed a sentence would hear the answer resume mid-thought once it is back.
        self._cut_short: str | None = None
        self._in_flight: set[str] = set()  # answers with a request under way
        self._quiet: str | None = None  # the answer that went quiet with its request under way

    def can_generate_metrics(self) -> bool:
        return True

    async def _speaker_latents(self) -> str:
        """The configured voice's latents, JSON-encoded; fetched once and again after any
        failure."""
        if self._latents is not None:
            return self._latents
        try:
            url = f"{self._base_url}/studio_speakers"
            async with self._session.get(url, timeout=self._timeout) as response:
                if response.status != 200:
                    raise TTSServerUnavailable(
                        f"TTS server answered {response.status} for its voices"
                    )
                speakers: dict[str, Any] = await response.json()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TTSServerUnavailable(self._unreachable(error)) from error
        if not speakers:
            raise TTSServerUnavailable("TTS server offers no voices")
        if not self._voice:
            self._voice = next(iter(speakers))
        if self._voice not in speakers:
            raise TTSServerUnavailable(
                f"voice {self._voice!r} is not offered by the TTS server "
                f"(it has: {', '.join(speakers)})"
            )
        voice = speakers[self._voice]
        keys = ("speaker_embedding", "gpt_cond_latent")
        self._latents = json.dumps({key: voice[key] for key in keys})[1:-1]
        logger.info(f"{self}: voice {self._voice!r}")
        return self._latents

    def _request_body(self, text: str, latents: str) -> bytes:
        """The /tts_stream request, byte for byte as `json.dumps` would write it."""
        head = json.dumps({"text": text, "language": self._language})[:-1]
        tail = json.dumps({"add_wav_header": False, "stream_chunk_size": 20})[1:]
        return f"{head}, {latents}, {tail}".encode()

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        if context_id == self._cut_short:
            logger.debug(f"{self}: not speaking the rest of an answer whose speech failed")
            return
        if not any(c.isalnum() for c in text):
            return  # "…" or an emoji on its own: nothing to say, and the server would refuse it
        self._in_flight.add(context_id)
        try:
            async for frame in self._speak(text, context_id):
                if context_id == self._quiet:
                    # The answer went quiet and was reported (see _record_context_audio_outcome):
                    # what this request brings now would be heard after the turn moved on.
                    logger.debug(f"{self}: dropping a late reply for an answer gone quiet")
                    return
                yield frame
        finally:
            self._in_flight.discard(context_id)
            if context_id == self._quiet:
                self._failed_contexts.discard(context_id)  # its outcome is recorded already

    async def _speak(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """One piece of text: its audio, or one error in words."""
        try:
            latents = await self._speaker_latents()
        except TTSServerUnavailable as error:
            self._fail(context_id)
            yield ErrorFrame(error=str(error), category=ErrorCategory.CONNECTIVITY)
            return
        payload = self._request_body(text, latents)
        for attempt in (1, 2):
            heard = False
            try:
                async for frame in self._stream(payload, text, context_id):
                    heard = heard or isinstance(frame, TTSAudioRawFrame)
                    if isinstance(frame, ErrorFrame):  # this text refused: reported in words
                        self._failed_contexts.add(context_id)
                    yield frame
                return
            except (aiohttp.ClientError, TimeoutError) as error:
                if attempt == 1 and not heard and _dropped(error):
                    # A keep-alive connection the server had already closed: a fresh one works.
                    logger.debug(f"{self}: connection dropped before any audio; trying again")
                    continue
                self._latents = None
                self._fail(context_id)
                yield ErrorFrame(
                    error=self._unreachable(error), category=ErrorCategory.CONNECTIVITY
                )
                return

    def _fail(self, context_id: str) -> None:
        self._failed_contexts.add(context_id)
        self._cut_short = context_id

    async def _stream(
        self, payload: bytes, text: str, context_id: str
    ) -> AsyncGenerator[Frame, None]:
        """One `/tts_stream` request: its audio in whole samples, or the refusal in words."""
        url = f"{self._base_url}/tts_stream"
        headers = {"Content-Type": "application/json"}
        asked = time.monotonic()
        post = self._session.post(url, data=payload, headers=headers, timeout=self._timeout)
        async with post as response:
            if response.status != 200:
                detail = (await response.text())[:300]
                if response.status == 400:
                    # The server may have restarted with other voices: look them up again.
                    self._latents = None
                yield ErrorFrame(error=f"TTS server refused the text ({response.status}): {detail}")
                return
            await self.start_tts_usage_metrics(text)
            # Pipecat's own streaming helper: whole 16-bit samples, however the bytes arrive.
            frames = pipecat_compat.stream_audio_frames(
                self, response.content.iter_any(), in_sample_rate=SERVER_RATE, context_id=context_id
            )
            lead, audio_secs = None, 0.0
            async for frame in frames:
                await self.stop_ttfb_metrics()
                if isinstance(frame, TTSAudioRawFrame):
                    lead = time.monotonic() - asked if lead is None else lead
                    audio_secs += len(frame.audio) / (2 * frame.num_channels * frame.sample_rate)
                yield frame
            if lead is not None:
                # The voice's pace and the server's lead, for the cutter's timing (bot/text.py).
                self._cutter.spoken(len(text.split()), audio_secs, lead)

    async def _record_context_audio_outcome(self, context_id: str, received_audio: bool) -> None:
        # Pipecat's private (bot/pipecat_compat.py). It reports a context that ends without
        # audio as an error of its own; when the context's request failed, that failure was
        # reported already (once per outage).
        if context_id in self._failed_contexts:
            self._failed_contexts.discard(context_id)
            if not received_audio:
                return
        if not received_audio and context_id == self._quiet:
            return  # the rest of an answer reported gone quiet, which was not spoken
        if not received_audio and context_id in self._in_flight:
            # Pipecat ends an answer that stays quiet for its stop-frame wait (3 s), which can
            # come before the request's own deadline (a connection that hangs while the server
            # restarts): the server was asked and sent nothing. Say so in words, and speak
            # neither this request's late reply nor the rest of the answer.
            self._cut_short = self._quiet = context_id
            secs = pipecat_compat.stop_frame_timeout_secs(self)
            await self.push_error(
                f"TTS server at {self._base_url} sent nothing for {secs:g} s",
                category=ErrorCategory.CONNECTIVITY,
            )
            return
        await super()._record_context_audio_outcome(context_id, received_audio)

    def _unreachable(self, error: Exception) -> str:
        if isinstance(error, TimeoutError):
            secs = self._timeout.sock_read
            return f"TTS server at {self._base_url} sent nothing for {secs:g} s"
        return f"TTS server unreachable at {self._base_url} ({error.__class__.__name__})"
