"""The caller's WebRTC audio reaches the pipeline two packets at a time, whole and in order."""

from __future__ import annotations

import fractions
from types import SimpleNamespace

import numpy as np
import pipecat.transports.smallwebrtc.connection as connection
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame

from bot.transports.paired_input import PairedAudioTrack, use_paired_input

RATE = 48000
PACKET = RATE // 50  # 20 ms, as aiortc decodes Opus


class Decoded(MediaStreamTrack):
    """What aiortc's receiver yields: 20 ms frames of stereo s16, numbered sample by sample."""

    def __init__(self, kind: str = "audio", rates=(RATE,) * 10):
        super().__init__()
        self.kind = kind
        self._rates = list(rates)
        self.sent = 0

    async def recv(self):
        rate = self._rates.pop(0)
        samples = np.arange(self.sent, self.sent + PACKET, dtype="<i2").repeat(2)[None, :]
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = rate, self.sent
        frame.time_base = fractions.Fraction(1, rate)
        self.sent += PACKET
        return frame


def wrapped(track: MediaStreamTrack) -> PairedAudioTrack:
    return PairedAudioTrack(SimpleNamespace(track=track, _enabled=False))


async def test_two_packets_become_one_frame_timed_as_the_first():
    track = wrapped(Decoded())
    try:
        first, second = await track.recv(), await track.recv()
    finally:
        track.stop()
    assert (first.samples, first.sample_rate, first.layout.name) == (2 * PACKET, RATE, "stereo")
    assert (first.pts, second.pts) == (0, 2 * PACKET)
    heard = np.concatenate([first.to_ndarray(), second.to_ndarray()], axis=1)[0, ::2]
    assert heard.tolist() == list(range(4 * PACKET)), "every sample, once, in order"


async def test_a_change_of_rate_mid_pair_starts_afresh_and_video_passes_untouched():
    track = wrapped(Decoded(rates=(RATE, 16000, 16000)))
    try:
        assert (await track.recv()).sample_rate == 16000
    finally:
        track.stop()
    video = wrapped(Decoded(kind="video"))
    try:
        assert (await video.recv()).samples == PACKET
    finally:
        video.stop()


def test_every_connection_receives_through_it():
    use_paired_input()
    assert connection.SmallWebRTCTrack is PairedAudioTrack
