"""Audio plumbing: float to 16-bit PCM, silence trimming, WAV headers, streaming resampling,
sentence splitting."""

from __future__ import annotations

import re
import struct

import numpy as np

# The XTTS contract: 16-bit little-endian mono PCM at 24 kHz.
OUTPUT_RATE = 24000
SAMPLE_WIDTH = 2
CHANNELS = 1

# XTTS v2's own per-sentence limit for English; also a good streaming granularity.
DEFAULT_SENTENCE_CHARS = 250

# A streamed WAV's length is unknown when its header goes out. Claiming the largest size makes
# players read until the connection closes (what ffmpeg does when it cannot seek back).
_STREAM_DATA_BYTES = 0xFFFFFFFF - 36 - 1  # even, so it is a whole number of samples


def to_pcm16(audio: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as s16le bytes; out-of-range samples are clipped."""
    scaled = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0
    return np.rint(scaled).astype("<i2").tobytes()


def trim_silence(
    audio: np.ndarray,
    sample_rate: int,
    *,
    keep_lead: float = 0.01,
    keep_tail: float = 0.12,
    threshold: float = 0.01,
) -> np.ndarray:
    """One utterance without the silence an engine pads it with, but for a natural margin.

    A listener waits through leading silence as if it were latency, and silence on both sides
    of a sentence break becomes a gap in the middle of a spoken answer.
    """
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if not loud.size:
        return audio
    start = max(0, loud[0] - int(keep_lead * sample_rate))
    end = min(len(audio), loud[-1] + 1 + int(keep_tail * sample_rate))
    return audio[start:end]


def wav_header(sample_rate: int = OUTPUT_RATE, data_bytes: int | None = None) -> bytes:
    """A 44-byte PCM WAV header; `data_bytes=None` gives the open-ended streaming header."""
    size = _STREAM_DATA_BYTES if data_bytes is None else data_bytes
    byte_rate = sample_rate * CHANNELS * SAMPLE_WIDTH
    return (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVEfmt "
        + struct.pack(
            "<IHHIIHH", 16, 1, CHANNELS, sample_rate, byte_rate, CHANNELS * SAMPLE_WIDTH, 16
        )
        + b"data"
        + struct.pack("<I", size)
    )


def wav_file(pcm: bytes, sample_rate: int = OUTPUT_RATE) -> bytes:
    """A complete WAV file around s16le mono `pcm`."""
    return wav_header(sample_rate, len(pcm)) + pcm


class StreamResampler:
    """Resamples a sequence of chunks as one continuous signal.

    Resampling chunks independently leaves a click at every boundary; soxr's streaming
    resampler carries its filter state from one chunk to the next instead.
    """

    def __init__(self, in_rate: int, out_rate: int = OUTPUT_RATE) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._stream = None
        if in_rate != out_rate:
            import soxr  # imported here so the rest of this module works without it

            self._stream = soxr.ResampleStream(in_rate, out_rate, CHANNELS, dtype="float32")

    def push(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.ascontiguousarray(chunk, dtype=np.float32).reshape(-1)
        if self._stream is None:
            return chunk
        return self._stream.resample_chunk(chunk)

    def flush(self) -> np.ndarray:
        """The samples still inside the filter; call once, after the last chunk."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


# Sentence ends: terminal punctuation and any closing quotes/brackets, then whitespace; or
# CJK terminal punctuation, which needs no whitespace after it.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|[。！？]+[”’」』）]*\s*")
# Clause ends, where a long sentence is cut first: after , ; : (and their full-width CJK
# forms), or before a spaced dash.
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|(?<=[，；：、])\s*|\s+(?=[—–]\s)")
# A period after these is not the end of a sentence ("Dr. Smith", "approx. ten").
_ABBREVIATIONS = frozenset((
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "approx", "dept",
    "est", "inc", "ltd", "corp", "fig", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec",
))  # fmt: skip


def split_sentences(text: str, max_chars: int = DEFAULT_SENTENCE_CHARS) -> list[str]:
    """Split `text` into sentences of at most `max_chars` characters, in order.

    Sentences stay whole where they fit; longer ones are cut at clause punctuation, then at
    whitespace, and only a single word longer than `max_chars` is cut mid-word.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    pieces: list[str] = []
    for line in text.splitlines():
        for sentence in _sentences(line):
            pieces.extend(_fit(sentence, max_chars))
    return pieces


def _sentences(line: str) -> list[str]:
    found, start = [], 0
    for match in _SENTENCE_END.finditer(line):
        if _ends_sentence(line, match.start(), match.end()):
            found.append(line[start : match.end()].strip())
            start = match.end()
    found.append(line[start:].strip())
    return [sentence for sentence in found if sentence]


def _ends_sentence(line: str, mark: int, after: int) -> bool:
    following = line[after : after + 1]
    if following.islower():
        return False  # "e.g. this", "at 3 p.m. today"
    if line[mark] != ".":
        return True
    before = line[:mark].split()
    word = before[-1].lstrip("\"'“‘(").lower() if before else ""
    # Titles and abbreviations, initials ("J. R. R. Tolkien") and dotted forms ("U.S. Army").
    return not (word in _ABBREVIATIONS or len(word) == 1 or "." in word)


def _fit(sentence: str, max_chars: int) -> list[str]:
    """`sentence` as pieces of at most `max_chars`, cut at clauses first, then at words."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        clause = clause.strip()
        parts = [clause] if len(clause) <= max_chars else _pack_words(clause, max_chars)
        for part in parts:
            if pieces and len(pieces[-1]) + 1 + len(part) <= max_chars:
                pieces[-1] = f"{pieces[-1]} {part}"
            elif part:
                pieces.append(part)
    return pieces


def _pack_words(text: str, max_chars: int) -> list[str]:
    """As many whole words per piece as fit; a word longer than a piece is cut."""
    pieces: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        if current and len(current) + 1 + len(word) <= max_chars:
            current = f"{current} {word}"
        elif word:
            if current:
                pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces
