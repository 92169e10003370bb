"""`make run`'s launcher: starts everything offline, falls back where it must, stops cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.llm_choice import choose
from scripts.call_cost import bot_pid
from scripts.llm_server import fast_bundled_gguf
from scripts.timing_twin import build
from tests.support import ARTIFACTS, ROOT, free_port

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def llm_server_as(model: str):
    """A real llama.cpp server (in this process) answering as `model`, as Ollama would."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(fast_bundled_gguf())
    params.model_alias = {model}
    params.hostnames = ["127.0.0.1"]
    params.port = free_port()
    params.n_ctx = 512
    server = xllamacpp.Server(params)
    yield f"http://127.0.0.1:{params.port}/v1"
    del server


@pytest.fixture
def other_llm_server():
    """The configured LLM_MODEL, `other`, served."""
    with llm_server_as("other") as url:
        yield url


def test_run_starts_the_offline_stack_and_ctrl_c_stops_it(other_llm_server, tmp_path):
    bot_port, tts_port, llm_port = free_port(), free_port(), free_port()
    twin = build("smollm2-135m", out=tmp_path)
    env = {
        **os.environ,
        "BOT_PORT": str(bot_port),
        "BOT_HOST": "127.0.0.1",
        "XTTS_BASE_URL": f"http://127.0.0.1:{tts_port}",
        # A server answers as LLM_MODEL, but LLM_GGUF names a file: the embedded server serves it.
        "LLM_BASE_URL": other_llm_server,
        "LLM_MODEL": "other",
        "LLM_GGUF": str(twin),
        "LLM_THREADS": "0",
        "LLM_SERVER_PORT": str(llm_port),
        "TTS_ENGINE": "xtts",  # cannot run here: the launcher must fall back, and say so
        "WHISPER_MODEL": "small.en",  # not downloadable here: the bot must fall back, and say so
    }
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "launcher.log"
    with log_path.open("w") as log:
        launcher = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 180
            while "ready: open http://localhost" not in log_path.read_text():
                assert launcher.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.5)
            output = log_path.read_text()
            assert "starting the embedded llama.cpp server" in output
            assert "the xtts engine cannot run here" in output
            assert "using the bundled offline tiny.en" in output
            assert f"{twin.name} is a timing twin of HuggingFaceTB/SmolLM2-135M-Instruct" in output
            ready = httpx.get(f"http://127.0.0.1:{bot_port}/ready").json()
            assert ready["ready"] is True, ready
            llm = ready["llm"]  # what the benchmark records
            assert llm["timing-twin-of"] == "HuggingFaceTB/SmolLM2-135M-Instruct", llm
            assert llm["quantisation"] == "Q8_0" and llm["parameters"] == 134_515_008, llm
            # A core left to the bot.
            assert llm["generation-threads"] == max(1, (os.cpu_count() or 2) - 1), llm
            assert 'id="connect"' in httpx.get(f"http://127.0.0.1:{bot_port}/").text
        finally:
            launcher.send_signal(signal.SIGINT)
            assert launcher.wait(30) == 0, log_path.read_text()

    # Everything it started is gone.
    for port in (bot_port, tts_port, llm_port):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_run_uses_a_server_with_the_model_for_this_machine_and_the_bot_asks_for_it():
    """LLM_MODEL=auto: the launcher finds the model chosen for this machine already served (an
    Ollama with it pulled), says why that one, and hands the bot that model, rather than have it
    choose again once the server has taken memory for the model (the choice goes by the memory
    free)."""
    model = choose().model.ollama
    bot_port = free_port()
    with llm_server_as(model) as url:
        env = {
            **os.environ,
            "BOT_PORT": str(bot_port),
            "XTTS_BASE_URL": f"http://127.0.0.1:{free_port()}",
            "LLM_BASE_URL": url,
            "LLM_MODEL": "auto",
            "LLM_GGUF": "auto",
            "LLM_SERVER_PORT": str(free_port()),
        }
        launcher = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            out = ""
            deadline = time.monotonic() + 180
            assert launcher.stdout is not None
            while "ready: open http://localhost" not in out:
                assert launcher.poll() is None and time.monotonic() < deadline, out
                out += launcher.stdout.readline()
            assert f"LLM: using {model} at {url}" in out, out
            assert "is the model for this machine" in out and "cores" in out, out
            assert "starting the embedded llama.cpp server" not in out, out
            ready = httpx.get(f"http://127.0.0.1:{bot_port}/ready").json()
            assert ready["ready"] is True, ready
            environ = Path(f"/proc/{bot_pid(launcher.pid)}/environ").read_bytes().split(b"\0")
            assert f"LLM_MODEL={model}".encode() in environ
        finally:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(30)


def test_run_stops_on_a_tts_settings_error_instead_of_falling_back():
    """A misconfiguration is not an engine that cannot run here: the launcher says what is
    wrong, in the TTS server's words, and stops."""
    env = {
        **os.environ,
        "BOT_PORT": str(free_port()),
        "XTTS_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "LLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
        "LLM_SERVER_PORT": str(free_port()),
        "TTS_MAX_TEXT_CHARS": "0",
    }
    result = subprocess.run(
        [sys.executable, "scripts/run.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert "TTS_MAX_TEXT_CHARS: " in result.stdout
    assert "tts exited with 2 while starting: its settings are invalid" in result.stdout
    assert "using the offline" not in result.stdout
