"""`make run`: start the LLM server, the TTS server and the bot natively, and supervise them.

- LLM: the OpenAI-compatible server at LLM_BASE_URL when it answers and serves LLM_MODEL
  (e.g. a local Ollama; `auto`: the model for this machine, bot/llm_choice.py); otherwise, or
  when LLM_GGUF names a file, the embedded llama.cpp server (scripts/llm_server.py) with that
  file, or with the model for this machine (LLM_GGUF=auto).
- TTS: the server at XTTS_BASE_URL when it is already up; otherwise `python -m xtts`, and when
  the configured engine cannot run here (its packages or weights are not installed: the engine
  registry says so up front, or the server exits with EXIT_UNAVAILABLE), the offline hibari
  engine. Any other failure (invalid settings: exit 2) stops the launcher with the server's words.
- The bot: `python -m bot`.

It waits until the bot's /ready says everything is up, prints the page's URL, and on Ctrl-C (or
when any process dies) stops them all. Each process's output is prefixed with its name.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlparse

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import Field, ValidationError  # noqa: E402
from pydantic_settings import BaseSettings, SettingsConfigDict  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.health import probe_llm, probe_tts  # noqa: E402
from bot.llm_choice import choose  # noqa: E402
from scripts.llm_server import LLMServerSettings, settings_problems  # noqa: E402


class LauncherSettings(BaseSettings):
    """The launcher's own settings: the environment, then `.env`, like every other part."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # The first field of each section, and its title (scripts/settings_docs.py).
    SECTIONS: ClassVar[dict[str, str]] = {"run_ready_timeout": "make run"}

    # A first start downloads models: Whisper's, and the hub LLM when it is reachable.
    run_ready_timeout: float = Field(
        600,
        gt=0,
        le=86400,
        description="How long to wait, in seconds, for everything to be ready (a first model "
        "download can take minutes)",
    )


def say(message: str) -> None:
    print(f"\033[1mrun\033[0m  {message}", flush=True)


async def pipe_output(name: str, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        sys.stdout.write(f"{name:>4} | {line.decode(errors='replace')}")
        sys.stdout.flush()


_pipes: set[asyncio.Task] = set()  # output forwarders, kept alive while their process runs


async def start(name: str, args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
    )
    _pipes.add(asyncio.create_task(pipe_output(name, process.stdout)))
    return process


OFFLINE_TTS_ENGINE = "hibari"


class ProcessExited(RuntimeError):
    """A process died while the launcher waited for it to be ready."""

    def __init__(self, name: str, returncode: int) -> None:
        # 2 is what the TTS server exits with for invalid settings, each named in its output.
        hint = ": its settings are invalid (see above)" if name == "tts" and returncode == 2 else ""
        super().__init__(f"{name} exited with {returncode} while starting{hint}")
        self.returncode = returncode


def configured_tts_engine() -> str:
    from pydantic import ValidationError

    from xtts.config import Settings as TTSSettings
    from xtts.engines.choice import InvalidEngineSetting, choose_engine

    try:
        return choose_engine(TTSSettings()).name
    except (ValidationError, InvalidEngineSetting):
        return os.environ.get("TTS_ENGINE", OFFLINE_TTS_ENGINE)


def tts_fallback_reason(engine: str, returncode: int | None = None) -> str | None:
    """Why `engine` cannot run on this machine, so that the offline engine is used instead; None
    when it can, or when it failed for another reason (settings), which must stop the launcher.

    Without `returncode`, the engine registry is asked before starting (packages installed?);
    with it, the TTS server's exit status says (weights missing, an import that failed).
    """
    from xtts.__main__ import EXIT_UNAVAILABLE
    from xtts.engines.base import ENGINES, not_installed

    if engine == OFFLINE_TTS_ENGINE or engine not in ENGINES:
        return None
    if returncode is None:
        return not_installed(engine)
    return "see above" if returncode == EXIT_UNAVAILABLE else None


async def start_tts(port: int, bot_env: dict[str, str], processes: dict, within: float) -> None:
    """Start the TTS server and wait until it is ready; falls back to the offline engine only
    when the configured one cannot run here. Each process is registered at once, so Ctrl-C
    always stops it."""
    url = f"http://127.0.0.1:{port}/ready"
    engine = configured_tts_engine()
    reason = tts_fallback_reason(engine)
    if reason is None:
        say(f"TTS: starting the TTS server ({engine}) on :{port}")
        processes["tts"] = await start("tts", ["-m", "xtts"], {"TTS_PORT": str(port)})
        try:
            await wait_ready(url, {"tts": processes["tts"]}, within)
            return
        except ProcessExited as exited:
            reason = tts_fallback_reason(engine, exited.returncode)
            if reason is None:
                raise
    say(
        f"TTS: the {engine} engine cannot run here ({reason}); using the offline {OFFLINE_TTS_ENGINE} engine"
    )
    # The configured voice belongs to the other engine: let the bot take the server's first.
    bot_env["TTS_VOICE"] = ""
    env = {"TTS_PORT": str(port), "TTS_ENGINE": OFFLINE_TTS_ENGINE, "TTS_VOICE": ""}
    processes["tts"] = await start("tts", ["-m", "xtts"], env)
    await wait_ready(url, {"tts": processes["tts"]}, within)


async def wait_ready(
    url: str, processes: dict[str, asyncio.subprocess.Process], within: float
) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=3) as client:
        while time.monotonic() < deadline:
            for name, process in processes.items():
                if process.returncode is not None:
                    raise ProcessExited(name, process.returncode)
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"not ready after {within:.0f}s (RUN_READY_TIMEOUT): {url}")


async def stop_all(processes: dict[str, asyncio.subprocess.Process]) -> None:
    for process in processes.values():
        if process.returncode is None:
            process.terminate()
    for name, process in processes.items():
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            say(f"{name} did not stop in 10 s; killing it")
            process.kill()
            await process.wait()


async def main() -> int:
    settings = load_settings()
    try:
        launcher, embedded = LauncherSettings(), LLMServerSettings()
    except ValidationError as error:
        say(settings_problems(error))
        return 2
    timeout = launcher.run_ready_timeout
    # One bot process and no proxy: it takes every call this machine can (BOT_REPLICAS is Compose's).
    bot_env: dict[str, str] = {"BOT_REPLICAS": "1"}
    processes: dict[str, asyncio.subprocess.Process] = {}

    async with aiohttp.ClientSession() as session:
        problem = await probe_llm(session, settings, model=settings.llm_model)
        tts_up = await probe_tts(session, settings) is None
    if embedded.llm_gguf not in ("auto", "bundled"):
        problem = f"LLM_GGUF is {embedded.llm_gguf}"
    if problem is None:
        say(f"LLM: using {settings.llm_model} at {settings.llm_base_url}")
        # The model as chosen here: the bot, choosing again once Ollama has taken memory for it,
        # could come to another (LLM_MODEL=auto goes by the memory free).
        bot_env["LLM_MODEL"] = settings.llm_model
        chosen = choose()
        if settings.llm_model == chosen.model.ollama:
            say(f"LLM: {chosen.model.name} is the model for this machine ({chosen.why})")
    else:
        port = embedded.llm_server_port
        say(f"LLM: {problem}; starting the embedded llama.cpp server on :{port}")
        llm_url = f"http://127.0.0.1:{port}/v1"
        bot_env.update({"LLM_BASE_URL": llm_url, "LLM_MODEL": "local", "LLM_API_KEY": "EMPTY"})
        processes["llm"] = await start("llm", ["scripts/llm_server.py", "--port", str(port)], {})

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    async def start_tts_and_bot() -> None:
        if tts_up:
            say(f"TTS: using the server at {settings.xtts_base_url}")
        else:
            port = urlparse(settings.xtts_base_url).port or 8001
            await start_tts(port, bot_env, processes, timeout)
        processes["bot"] = await start("bot", ["-m", "bot"], bot_env)
        await wait_ready(f"http://127.0.0.1:{settings.bot_port}/ready", processes, timeout)

    ready = asyncio.create_task(start_tts_and_bot())
    interrupted = asyncio.create_task(stopping.wait())
    status = 0
    try:
        done, _ = await asyncio.wait([ready, interrupted], return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            ready.result()  # raises if a process died or time ran out
            say(f"ready: open http://localhost:{settings.bot_port} in your browser (Ctrl-C stops)")
            exits = [asyncio.create_task(p.wait()) for p in processes.values()]
            await asyncio.wait([interrupted, *exits], return_when=asyncio.FIRST_COMPLETED)
            for name, process in processes.items():
                if process.returncode is not None and not stopping.is_set():
                    say(f"{name} exited with {process.returncode}; stopping the rest")
                    status = 1
    except RuntimeError as error:
        say(str(error))
        status = 1
    finally:
        say("stopping ...")
        ready.cancel()
        await stop_all(processes)
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
