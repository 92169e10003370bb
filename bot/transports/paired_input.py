"""The caller's WebRTC audio handed to the pipeline 40 ms at a time, not aiortc's 20 ms.

Every frame of the caller's audio is work for the bot's event loop however short it is:
Pipecat resamples it, wraps it, passes it from processor to processor (each pass queued for the
observers and formatted for a trace log line), and hands it to the VAD's thread and back. Two
packets' audio at once halves that: on 2 cores a connected, silent call took 10.9 % of a core
with 20 ms frames and 9.0 % with 40 ms (`make call-cost`). The price: the pipeline hears the
first half of each pair 20 ms later.
"""

from __future__ import annotations

import numpy as np
import pipecat.transports.smallwebrtc.connection as connection
from av import AudioFrame
from pipecat.transports.smallwebrtc.connection import SmallWebRTCTrack


def join(first: AudioFrame, second: AudioFrame) -> AudioFrame:
    """Two consecutive frames of the same format as one, timed as the first."""
    samples: np.ndarray = np.concatenate([first.to_ndarray(), second.to_ndarray()], axis=1)
    joined = AudioFrame.from_ndarray(
        samples,  # type: ignore[arg-type]  (the frames' own sample type)
        format=first.format.name,
        layout=first.layout.name,
    )
    joined.sample_rate, joined.pts, joined.time_base = (
        first.sample_rate,
        first.pts,
        first.time_base,
    )
    return joined


class PairedAudioTrack(SmallWebRTCTrack):
    """Pipecat's wrapper of a received track, giving an audio track's frames two at a time."""

    async def recv(self):
        first = await super().recv()
        if self._track.kind != "audio" or not isinstance(first, AudioFrame):
            return first
        second = await super().recv()
        if not isinstance(second, AudioFrame):
            return first
        same = (second.format.name, second.layout.name, second.sample_rate) == (
            first.format.name,
            first.layout.name,
            first.sample_rate,
        )
        # A change of format mid-call (a renegotiation) is rare: the first frame is dropped.
        return join(first, second) if same else second


def use_paired_input() -> None:
    """Have every SmallWebRTC connection of this process receive through `PairedAudioTrack`
    (Pipecat builds its track wrappers inside its connection, by this module-level name)."""
    connection.SmallWebRTCTrack = PairedAudioTrack  # type: ignore[misc]
