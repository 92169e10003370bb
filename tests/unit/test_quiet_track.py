"""The WebRTC output track sends nothing between answers, and resumes on the clock."""

from __future__ import annotations

import asyncio

from bot.transports.quiet_track import QuietAudioTrack

RATE = 24000
TEN_MS = RATE // 100


async def test_nothing_is_sent_while_quiet_and_the_pause_is_a_gap_in_the_timestamps():
    track = QuietAudioTrack(RATE)
    track.add_audio_bytes(bytes(2 * TEN_MS * 2))  # 20 ms of speech
    first, second = await track.recv(), await track.recv()
    assert (first.pts, second.pts) == (0, TEN_MS)
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.3)
    assert not waiting.done(), "a frame was sent with nothing to say"
    track.add_audio_bytes(bytes(TEN_MS * 2))
    resumed = await asyncio.wait_for(waiting, 1)
    # The frame after 0.3 s of quiet is stamped 0.3 s on, not 10 ms after the last one.
    assert resumed.pts >= round(0.3 * RATE) and resumed.pts % TEN_MS == 0, resumed.pts
    assert resumed.pts <= round(0.5 * RATE), resumed.pts


async def test_speech_queued_ahead_goes_at_its_own_pace_and_its_writer_is_told():
    track = QuietAudioTrack(RATE)
    done = track.add_audio_bytes(bytes(5 * TEN_MS * 2))
    start = asyncio.get_running_loop().time()
    frames = [await track.recv() for _ in range(5)]
    assert [f.pts for f in frames] == [i * TEN_MS for i in range(5)] and done.done()
    # Played out at the clock: the fifth frame is not sent before 40 ms have passed.
    assert asyncio.get_running_loop().time() - start >= 0.035
