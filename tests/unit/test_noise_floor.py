"""The noise floor under the VAD: the room's level, learned without anyone saying who spoke, and
what stands out from it."""

import numpy as np

from bot.turns import NoiseFloor

RATE = 16000
FRAME = 320  # 20 ms


def hear(floor: NoiseFloor, pcm: list[bytes], confidence: float) -> None:
    """The line's frames, with what Silero made of each."""
    for frame in pcm:
        floor.listen(frame)
        floor.judge(confidence)


def frames(level_db: float, secs: float, seed: int = 0) -> list[bytes]:
    """Noise at `level_db` dBFS (RMS), in 20 ms frames of 16-bit PCM."""
    rng = np.random.default_rng(seed)
    samples = rng.normal(0, 10 ** (level_db / 20), int(secs * RATE)) * 32768
    pcm = np.clip(samples, -32768, 32767).astype("<i2")
    return [pcm[i : i + FRAME].tobytes() for i in range(0, len(pcm), FRAME)]


def test_everything_counts_until_the_room_has_been_heard():
    floor = NoiseFloor(6.0)
    for frame in frames(-35, 0.2):
        floor.listen(frame)
    assert floor.floor is None and floor.stands_out(starting=True)


def test_in_a_room_of_other_voices_only_a_caller_above_them_counts():
    floor = NoiseFloor(6.0, start_extra_db=4.0)
    hear(floor, frames(-35, 2.0), confidence=0.95)  # Silero hears the room as speech
    assert abs(floor.floor - (-35)) < 1.5 and floor.voices
    assert not floor.stands_out(), "the room's own level"
    hear(floor, frames(-27, 0.3, seed=1), confidence=0.95)  # 8 dB above the room
    assert floor.stands_out(), "enough to go on speaking"
    assert not floor.stands_out(starting=True), "not enough to start: other voices reach it"
    hear(floor, frames(-22, 0.3, seed=2), confidence=0.95)
    assert floor.stands_out(starting=True)


def test_a_steady_noise_is_left_to_silero():
    """A fan or a street, which Silero does not take for speech: a caller 8 dB above it may
    start speaking (among other voices that takes 10 dB)."""
    floor = NoiseFloor(6.0, start_extra_db=4.0)
    hear(floor, frames(-35, 2.0), confidence=0.05)
    assert not floor.voices
    hear(floor, frames(-27, 0.3, seed=1), confidence=0.9)
    assert floor.stands_out(starting=True)


def test_the_floor_follows_the_room_not_a_caller_who_talks_for_seconds():
    """Between phrases (0.3 s every second here) only the room is heard."""
    floor = NoiseFloor(6.0)
    hear(floor, frames(-35, 1.0), confidence=0.95)
    talk = frames(-20, 4.0, seed=3)
    gaps = frames(-35, 1.0, seed=4)
    for i, frame in enumerate(talk):  # a word gap every second
        hear(floor, [gaps[i % len(gaps)] if i % 50 < 15 else frame], confidence=0.95)
    assert floor.floor < -30 and floor.stands_out()


def test_a_sound_rising_from_the_line_is_noticed_on_its_first_frame_only():
    floor = NoiseFloor(6.0)
    hear(floor, frames(-60, 0.4), confidence=0.0)
    floor.listen(frames(-30, 0.02, seed=1)[0])
    assert not floor.rising, "half a second of the line is needed before anything rises from it"
    hear(floor, frames(-60, 0.6, seed=2), confidence=0.0)
    assert not floor.rising
    floor.listen(frames(-40, 0.02, seed=3)[0])  # 20 dB above the line's half second before
    assert floor.rising
    floor.listen(frames(-60, 0.02, seed=4)[0])
    assert not floor.rising
    # Nothing rises from below the quietest a voice starts at, however quiet the line.
    hear(floor, frames(-90, 0.6, seed=5), confidence=0.0)
    floor.listen(frames(-70, 0.02, seed=6)[0])
    assert not floor.rising


def test_the_line_is_heard_frame_by_frame_however_long_the_pieces_it_comes_in():
    """A transport's 20 ms frames, 40 ms ones, or pieces that split frames: one floor."""
    line = b"".join(frames(-45, 2.0) + frames(-20, 0.1, seed=1) + frames(-45, 1.0, seed=2))
    heard = []
    for piece in (640, 1280, 1000):  # bytes: 20 ms, 40 ms, and pieces that split frames
        floor, rising = NoiseFloor(6.0), []
        for start in range(0, len(line), piece):
            floor.listen(line[start : start + piece])
            rising.append(floor.rising)
        heard.append((floor.floor, floor.level, any(rising)))
    assert heard[0] == heard[1] == heard[2]
    assert heard[0][2], "the loud tenth of a second rose from the line"
