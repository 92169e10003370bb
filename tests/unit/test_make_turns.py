"""The turn set's signal processing, its layout and timing facts, and the set's own invariants."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pytest

from scripts import make_turns, speech
from scripts.make_turns import LEAD_SECS, RATE, SHAPES, TAIL_SECS, TURNS, TurnSpec

pytestmark = pytest.mark.unit

PARTS = ("tune", "dev", "held-out")

# What the tests' recordings (tests/fixtures/questions/*.wav) say.
FIXTURES = [
    "What is the capital of France?",
    "Can you tell me a fun fact about the moon?",
    "What do plants need to grow?",
    "Why is the sky blue?",
    "How many legs does a spider have?",
    "What is two plus three?",
]


def tone(text: str, voice: str, speed: float) -> np.ndarray:
    """A stand-in engine: a vowel-like buzz, longer for longer text."""
    t = np.arange(int(0.05 * len(text) * RATE)) / RATE
    return (0.4 * np.sin(2 * np.pi * 180 * t) * np.sin(np.pi * t / t[-1])).astype(np.float32)


def clip() -> np.ndarray:
    """A clean clip as the set has one: silence, a second of speech at -6 dBFS, silence."""
    said = tone("x" * 20, "", 1.0)
    audio = np.concatenate([np.zeros(RATE // 2), said, np.zeros(RATE)]).astype(np.float32)
    return audio * 0.5 / np.abs(audio).max()


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    return 20 * np.log10(speech.speech_rms(clean) / speech._rms(noisy - clean))


def band_share(audio: np.ndarray, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / RATE)
    return float(power[(freqs >= low) & (freqs < high)].sum() / power.sum())


@pytest.mark.parametrize("level", [10.0, 15.0])
@pytest.mark.parametrize("noise", ["music", "fan"])
def test_noise_is_mixed_at_the_asked_ratio_over_the_whole_clip(noise, level):
    clean = clip()
    noisy = getattr(speech, noise)(clean, 3, level)
    assert snr_db(clean, noisy) == pytest.approx(level, abs=0.05)
    lead, said = (
        noisy[: RATE // 2],
        noisy[RATE // 2 : RATE * 3 // 2] - clean[RATE // 2 : RATE * 3 // 2],
    )
    assert speech._rms(lead) > 0.3 * speech._rms(said)  # the silences have it too


def test_babble_is_three_talkers_under_the_whole_clip(monkeypatch):
    spoken: list[str] = []

    def talker(text: str, voice: str, speed: float) -> np.ndarray:
        spoken.append(voice)
        return tone(text, voice, speed) * (1 + int(voice))

    monkeypatch.setitem(speech.ENGINES, "fake", talker)
    clean = clip()
    noisy = speech.babble(clean, 5, 10.0, [("fake", str(i), 1.0) for i in range(3)])
    assert snr_db(clean, noisy) == pytest.approx(10, abs=0.05)
    assert set(spoken) == {"0", "1", "2"}
    assert speech._rms(noisy[: RATE // 2]) > 0
    assert np.array_equal(
        noisy, speech.babble(clean, 5, 10.0, [("fake", str(i), 1.0) for i in range(3)])
    )


def test_the_phone_line_keeps_only_the_telephone_band():
    noise = np.random.default_rng(1).normal(0, 0.1, 2 * RATE).astype(np.float32)
    line = speech.phone(noise, 1)
    assert len(line) == len(noise)
    assert band_share(line, 3600, RATE / 2) < 0.005
    assert band_share(line, 0, 250) < 0.005
    assert band_share(line, 400, 3300) > 0.9  # of white noise's 0.94 between the edges


def test_mulaw_round_trip_keeps_the_samples_within_its_steps():
    pcm = np.arange(-32768, 32768, 7, dtype=np.int16)
    back = speech.mulaw_decode(speech.mulaw_encode(pcm)).astype(np.int32)
    wide = pcm.astype(np.int32)
    error = np.abs(back - wide)
    loud = np.abs(wide) > 256
    assert (error[loud] / np.abs(wide[loud])).max() < 0.06  # 8 bits, logarithmic steps
    assert error[~loud].max() <= 16  # the finest step is 8
    # G.711's codes for silence and the extremes.
    codes = speech.mulaw_encode(np.array([0, 32767, -32768], np.int16))
    assert codes.tolist() == [0xFF, 0x80, 0x00]


@pytest.mark.parametrize("seed", range(5))
def test_a_quiet_caller_peaks_as_asked_over_a_faint_hiss(seed):
    far = speech.quiet(clip(), seed)
    peak = 20 * np.log10(np.abs(far).max())
    assert -38.1 < peak < -31.9
    hiss = 20 * np.log10(speech._rms(far[: RATE // 2]))
    assert hiss == pytest.approx(-70, abs=1)


def test_reverb_rings_on_after_the_speech():
    clean = clip()
    end = RATE // 2 + len(tone("x" * 20, "", 1.0))
    wet = speech.reverb(clean, 2)
    assert np.abs(wet).max() == pytest.approx(np.abs(clean).max(), rel=1e-5)
    after = wet[end + RATE // 20 : end + RATE // 4]  # 50-250 ms after the last sound
    assert speech._rms(after) > 0.05 * speech._rms(clean[RATE // 2 : end])
    assert not clean[end:].any()


def test_a_turn_is_laid_out_and_timed_as_described(monkeypatch):
    monkeypatch.setitem(speech.ENGINES, "fake", tone)
    monkeypatch.setitem(make_turns.ENGINES, "fake", tone)
    turn = TurnSpec(
        "t", "tune", "two-sentence", ("One two.", "Three four five?"), (0.4,), "fake", "v", 1.0
    )
    clean, inside = make_turns.spoken(turn)
    facts = make_turns.timing(clean, inside)
    first, second = (len(tone(p, "v", 1.0)) / RATE for p in turn.pieces)
    assert np.abs(clean).max() == pytest.approx(0.5)
    [[start, end]] = facts["gaps_secs"]
    assert start == pytest.approx(LEAD_SECS + first, abs=0.02)
    assert end - start == pytest.approx(0.4, abs=0.01)
    assert facts["speech_end_secs"] == pytest.approx(end + second, abs=0.02)
    assert len(clean) / RATE == pytest.approx(facts["speech_end_secs"] + TAIL_SECS, abs=0.01)


def test_make_keeps_the_files_it_made_from_the_same_description(monkeypatch, tmp_path):
    monkeypatch.setitem(make_turns.ENGINES, "fake", tone)
    turns = [
        TurnSpec("a", "tune", "question", ("Why?",), (), "fake", "v", 1.0),
        TurnSpec("b", "tune", "opening", ("So,", "why?"), (0.7,), "fake", "v", 1.0, "fan", 10.0),
    ]
    monkeypatch.setattr(make_turns, "TURNS", turns)
    first = make_turns.make(tmp_path)
    [[start, end]] = first[1]["gaps_secs"]
    assert first[0]["gaps_secs"] == [] and end - start == pytest.approx(0.7, abs=0.01)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.wav")}
    assert make_turns.make(tmp_path) == first
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.wav")} == stamps
    monkeypatch.setattr(make_turns, "TURNS", [turns[0], replace(turns[1], snr_db=15.0)])
    make_turns.make(tmp_path)
    assert (tmp_path / "a.wav").stat().st_mtime_ns == stamps["a.wav"]
    assert (tmp_path / "b.wav").stat().st_mtime_ns != stamps["b.wav"]


def sentences(turn: TurnSpec) -> set[str]:
    pieces = {re.sub(r"[^a-z' ]", "", p.lower()).strip() for p in turn.pieces}
    return pieces | {re.sub(r"[^a-z' ]", "", turn.text.lower()).strip()}


def test_the_set_is_broad_and_its_parts_share_no_sentence():
    assert len(TURNS) >= 150
    assert len({t.name for t in TURNS}) == len(TURNS)
    parts = {part: [t for t in TURNS if t.part == part] for part in PARTS}
    assert sum(map(len, parts.values())) == len(TURNS)
    assert len(parts["tune"]) > len(parts["dev"]) == len(parts["held-out"]) >= 48
    said = {part: set().union(*map(sentences, turns)) for part, turns in parts.items()}
    for one, other in combinations(PARTS, 2):
        assert not said[one] & said[other], (one, other)
    fixtures = {re.sub(r"[^a-z' ]", "", f.lower()) for f in FIXTURES}
    assert not set().union(*said.values()) & fixtures
    for part in parts.values():
        assert {t.shape for t in part} == set(SHAPES)


def test_voices_keep_to_their_parts():
    by_part = {part: {(t.engine, t.voice) for t in TURNS if t.part == part} for part in PARTS}
    assert not {v for v in by_part["tune"] if v[0] == "festival"}
    festival = {("festival", name) for name in speech.FESTIVAL_VOICES}
    for part in ("dev", "held-out"):
        assert {v for v in by_part[part] if v[0] == "festival"} == festival
    assert {v for v in by_part["tune"] if v[0] == "flite"} == {("flite", "kal"), ("flite", "awb")}
    assert {v for v in by_part["dev"] if v[0] == "flite"} == {("flite", "rms"), ("flite", "slt")}
    assert by_part["held-out"] - by_part["tune"] - by_part["dev"]  # voices only it has
    for engine in speech.ENGINES:
        paced = {
            part: {(t.voice, t.speed) for t in TURNS if t.part == part and t.engine == engine}
            for part in PARTS
        }
        assert paced["dev"] and paced["held-out"]
        for one, other in combinations(PARTS, 2):
            assert not paced[one] & paced[other], (engine, one, other)


def test_every_condition_is_heard_as_often_in_every_part():
    counts = Counter((t.condition, t.snr_db) for t in TURNS)
    for noise in make_turns.NOISES:
        assert counts[noise, 10.0] >= 3 and counts[noise, 15.0] >= 3
    for condition in ("reverb", "phone", "quiet"):
        assert counts[condition, None] >= 3
    assert counts["clean", None] > len(TURNS) / 2
    for part in PARTS:
        degraded = Counter((t.condition, t.snr_db) for t in TURNS if t.part == part)
        del degraded["clean", None]
        assert degraded == Counter(make_turns.DEGRADATIONS * 2), part
    for condition in {t.condition for t in TURNS}:
        assert {t.part for t in TURNS if t.condition == condition} == set(PARTS)
        assert {t.shape for t in TURNS if t.condition == condition} == set(SHAPES)


def test_each_shape_has_its_pieces_and_gaps():
    for t in TURNS:
        assert len(t.gaps) == len(t.pieces) - 1
        if t.shape in make_turns.GAP_SECS:
            low, high = make_turns.GAP_SECS[t.shape]
            assert len(t.pieces) == 2 and all(low <= g <= high for g in t.gaps), t.name
        else:
            assert len(t.pieces) == 1, t.name
        if t.shape == "request":
            assert "?" not in t.text, t.name
        if t.shape == "question":
            assert t.text.endswith("?"), t.name
        assert (t.snr_db is not None) == (t.condition in make_turns.NOISES), t.name


class MishearingWhisper:
    """A stand-in for Whisper (its weights behave differently per CPU) that hears "park" as
    "powder": `audio` is "when I went to the park" (0-1 s), quiet, then "I saw a huge dog"
    (1.1-2 s)."""

    def __init__(self, audio: np.ndarray, extra: bool = False):
        self.audio, self.extra = audio, extra

    def transcribe(self, clip, word_timestamps=False, **_):
        first = "when i went to the powder" + (" uh" if self.extra else "")
        if word_timestamps:
            said = [*first.split(), "i", "saw", "a", "huge", "dog"]
            starts = [k / 7 for k in range(len(said) - 5)] + [1.1 + k * 0.18 for k in range(5)]
            words = [
                SimpleNamespace(word=f" {w}", start=s, end=s + 0.12)
                for w, s in zip(said, starts, strict=True)
            ]
            return [SimpleNamespace(text=" ".join(said), words=words)], None
        pad = RATE // 4
        inner = clip[pad : len(clip) - pad]
        if np.array_equal(inner, self.audio[: len(inner)]):  # the first piece
            text = first if len(inner) >= RATE else "when i went to the"
        else:
            text = "i saw a huge dog" if len(self.audio) - len(inner) <= 1.1 * RATE else "saw"
        return [SimpleNamespace(text=text, words=[])], None


def _park_dog() -> tuple[np.ndarray, TurnSpec]:
    t = np.arange(RATE) / RATE
    said = (0.4 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    audio = np.concatenate([said, np.zeros(RATE // 10, np.float32), said[: int(0.9 * RATE)]])
    spec = ("When I went to the park", "I saw a huge dog.")
    return audio, TurnSpec("d", "tune", "unfinished", spec, (0.7,), "fake", "v", 1.0)


def test_a_misheard_word_still_cuts_the_sentence_where_its_pieces_meet(monkeypatch):
    audio, turn = _park_dog()
    monkeypatch.setattr(make_turns, "_whisper_model", lambda: MishearingWhisper(audio))
    at = make_turns._cut(audio, turn)
    assert RATE <= at <= 1.1 * RATE


def test_a_word_heard_that_was_not_said_leaves_no_cut_to_guess(monkeypatch):
    audio, turn = _park_dog()
    monkeypatch.setattr(make_turns, "_whisper_model", lambda: MishearingWhisper(audio, True))
    with pytest.raises(SystemExit, match=r"Whisper heard .*powder uh i saw"):
        make_turns._cut(audio, turn)
