"""The bot's WebRTC voice, sent only while it speaks.

Pipecat's output track hands aiortc a frame of silence every 10 ms while the bot has nothing to
say, and aiortc resamples, Opus-encodes, encrypts and sends each one: on two cores that was 9 % of
a core per connected call (`scripts/call_cost.py`: an idle call 23 % → 14 %). `QuietAudioTrack`
sends nothing between answers instead, and the first packet after a pause carries the timestamp
of the moment it is sent, as a sender using discontinuous transmission (DTX) does: the caller's
jitter buffer sees a pause, not a packet seconds late (which would make it buffer more). Sequence
numbers run on without a gap, so nothing is taken for lost.
"""

from __future__ import annotations

import asyncio

from pipecat.transports.smallwebrtc.transport import RawAudioTrack

from bot import pipecat_compat


class QuietAudioTrack(RawAudioTrack):
    """Pipecat's `RawAudioTrack`, waiting (not sending silence) while nothing is queued. (Frames
    of 20 ms rather than its 10 ms, to halve aiortc's encoder hand-offs, measured no cheaper.)"""

    def __init__(self, sample_rate: int, auto_silence: bool = True):
        super().__init__(sample_rate, auto_silence=False)
        self._queued = asyncio.Event()

    def add_audio_bytes(self, audio_bytes: bytes):
        future = super().add_audio_bytes(audio_bytes)
        self._queued.set()
        return future

    async def recv(self):
        if not pipecat_compat.queued_audio(self):
            self._queued.clear()
            await self._queued.wait()
            # Resume on the clock: the time the line was quiet is a gap in the timestamps.
            pipecat_compat.track_clock_to_now(self)
        return await super().recv()


def use_quiet_track() -> None:
    """Have every SmallWebRTC transport of this process speak through `QuietAudioTrack` (Pipecat
    builds its track inside its client, by this module-level name)."""
    pipecat_compat.use_output_track(QuietAudioTrack)
