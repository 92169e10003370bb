"""PCM conversion, WAV headers, streaming resampling and sentence splitting."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from xtts.audio import (
    OUTPUT_RATE,
    StreamResampler,
    split_sentences,
    to_pcm16,
    wav_file,
    wav_header,
)


def test_to_pcm16_scales_clips_and_is_little_endian():
    pcm = to_pcm16(np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0], dtype=np.float32))
    assert np.frombuffer(pcm, dtype="<i2").tolist() == [
        0,
        16384,
        -16384,
        32767,
        -32767,
        32767,
        -32767,
    ]


def test_complete_wav_file_parses_with_the_standard_library():
    pcm = to_pcm16(np.linspace(-1, 1, 2400, dtype=np.float32))
    with wave.open(io.BytesIO(wav_file(pcm))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.getnframes() == 2400
        assert wav.readframes(2400) == pcm


def test_streaming_wav_header_claims_an_open_ended_length():
    header = wav_header()
    assert len(header) == 44
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt " and header[36:40] == b"data"
    riff_size = int.from_bytes(header[4:8], "little")
    data_size = int.from_bytes(header[40:44], "little")
    assert riff_size == data_size + 36
    assert data_size > 2**31 and data_size % 2 == 0
    # A reader takes the header plus whatever audio follows it.
    pcm = to_pcm16(np.zeros(480, dtype=np.float32))
    with wave.open(io.BytesIO(header + pcm)) as wav:
        assert wav.getframerate() == OUTPUT_RATE
        assert wav.readframes(10_000) == pcm


def _sine(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stream_resampler_converts_rate_and_keeps_length():
    source = _sine(22050, 1.0)
    resampler = StreamResampler(22050, 24000)
    chunks = [resampler.push(chunk) for chunk in np.array_split(source, 7)]
    out = np.concatenate([*chunks, resampler.flush()])
    assert abs(len(out) - 24000) <= 2
    # Still a 440 Hz tone: the spectrum peaks at 440 Hz on a 24 kHz axis.
    spectrum = np.abs(np.fft.rfft(out))
    peak_hz = np.argmax(spectrum) * 24000 / len(out)
    assert abs(peak_hz - 440) < 3


def test_stream_resampler_leaves_no_seam_between_chunks():
    source = _sine(22050, 1.0)
    whole = StreamResampler(22050, 24000)
    reference = np.concatenate([whole.push(source), whole.flush()])
    chunked = StreamResampler(22050, 24000)
    # Uneven chunks, as engines produce them.
    parts = np.split(source, [1000, 1003, 7000, 15000])
    streamed = np.concatenate([*(chunked.push(part) for part in parts), chunked.flush()])
    assert len(streamed) == len(reference)
    assert np.max(np.abs(streamed - reference)) < 1e-3
    # A smooth tone has no jump larger than its own per-sample slope anywhere.
    max_step = 0.5 * 2 * np.pi * 440 / 24000
    assert np.max(np.abs(np.diff(streamed[100:-100]))) < max_step * 1.1


def test_stream_resampler_passes_24khz_through_untouched():
    source = _sine(24000, 0.1)
    resampler = StreamResampler(24000, 24000)
    assert np.array_equal(resampler.push(source), source)
    assert resampler.flush().size == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. How are you? Fine!", ["Hello there.", "How are you?", "Fine!"]),
        ("Dr. Smith met Mrs. Jones.", ["Dr. Smith met Mrs. Jones."]),
        ("It costs 3.50 dollars. Cheap.", ["It costs 3.50 dollars.", "Cheap."]),
        ("The U.S. Army moved. Then it stopped.", ["The U.S. Army moved.", "Then it stopped."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("Wait... what? Yes.", ["Wait... what?", "Yes."]),
        ("First line\nsecond line", ["First line", "second line"]),
        ("你好。我很好！谢谢", ["你好。", "我很好！", "谢谢"]),
        ("  \n ", []),
    ],
)
def test_split_sentences_keeps_sentences_whole(text, expected):
    assert split_sentences(text) == expected


def test_split_sentences_cuts_long_sentences_at_clauses_then_words():
    sentence = (
        "When the storm finally passed over the valley, the farmers walked out to their fields, "
        "counted the fallen trees, and began to plan the long work of the coming weeks."
    )
    pieces = split_sentences(sentence, max_chars=60)
    assert all(len(piece) <= 60 for piece in pieces)
    assert pieces[0] == "When the storm finally passed over the valley,"
    # Nothing lost or reordered, and no word cut.
    assert " ".join(pieces).split() == sentence.split()


def test_split_sentences_cuts_an_unbroken_run_of_words_at_whitespace():
    sentence = " ".join(["word"] * 100)
    pieces = split_sentences(sentence, max_chars=50)
    assert all(len(piece) <= 50 for piece in pieces)
    assert " ".join(pieces) == sentence


def test_split_sentences_cuts_only_a_word_longer_than_the_limit():
    pieces = split_sentences("x" * 25 + " end", max_chars=10)
    assert pieces == ["x" * 10, "x" * 10, "xxxxx end"]


def test_split_sentences_rejects_a_zero_limit():
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("Hello.", max_chars=0)


def test_trim_silence_keeps_a_margin_around_the_sound():
    from xtts.audio import trim_silence

    rate = 1000
    audio = np.concatenate([np.zeros(300), np.full(100, 0.5), np.zeros(450)]).astype(np.float32)
    trimmed = trim_silence(audio, rate, keep_lead=0.03, keep_tail=0.12)
    assert len(trimmed) == 30 + 100 + 120
    assert np.abs(trimmed[30:130]).min() == 0.5
    silent = np.zeros(500, np.float32)
    assert trim_silence(silent, rate) is silent  # nothing loud: left as it is
