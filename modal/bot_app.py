"""The voice bot on Modal: the same FastAPI app as `python -m bot`, Whisper on one T4.

    modal deploy modal/bot_app.py           # https://<workspace>--voice-kit-bot-web.modal.run
    modal run modal/bot_app.py              # smoke test: wait until /ready says all is up

Serves the page, WebRTC signalling, the WebSocket transport and the Twilio endpoints: whatever
`bot.app.create_app(settings)` builds. Settings come from the environment as they do locally:
the image sets the Whisper ones, the Secret `voice-kit-llm-key` gives LLM_API_KEY, and the
optional Secret `voice-kit-bot` anything else (TWILIO_* and the like). LLM_BASE_URL and
XTTS_BASE_URL default to the web URLs of the deployed `voice-kit-llm` and `voice-kit-tts` apps,
looked up when the container starts; set them in `voice-kit-bot` to point elsewhere.

WebRTC media needs UDP, which Modal containers do not accept from outside: without a TURN server
in BOT_ICE_SERVERS the page falls back to the WebSocket transport, as it does behind Docker
Desktop. Phone calls use Twilio's media stream, a WebSocket, and need nothing more.

The file is not named bot.py: `modal deploy` imports a script under its file name, which would
shadow the bot package it serves.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import modal

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.config import Settings

APP_NAME = "voice-kit-bot"
LLM_APP, LLM_FUNCTION = "voice-kit-llm", "serve"
TTS_APP, TTS_FUNCTION = "voice-kit-tts", "web"
LLM_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
WHISPER_MODEL = "large-v3-turbo"
MINUTES = 60

# Sized from the measured cost of a call (docs/operations.md, "Calls per core"): the bot's process
# spends 11-13 % of a core on a connected, silent call and 25-27 % while the bot talks (2-vCPU
# x86, `make call-cost`). Whisper's turns run on the T4 here, a fraction of a second per turn, so the
# container's CPU runs out first: each call is given the talking figure with some headroom, and
# one core more for the event loop's bursts (a call starting, the page's files, /ready).
CORES_PER_CALL = 0.3
CALLS_PER_CONTAINER = 8
# Page loads, offers and probes are inputs too, beside each call's one long input.
SPARE_INPUTS = 4

# CUDA and cuDNN from NVIDIA's runtime image (CTranslate2 loads them; the wheels do not carry
# them), the same base as the bot image's CUDA build (docker/Dockerfile). Dependencies from
# uv.lock (the bot extra, no torch), then Whisper baked in, then the code.
image = (
    modal.Image.from_registry("nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04", add_python="3.11")
    .apt_install("libgomp1")  # llama.cpp's OpenMP runtime, for the sentence-end model
    .uv_sync(extras=["bot"], extra_options="--no-dev", uv_version="0.13.9")
    .env({"HF_HOME": "/opt/models/hf"})
    .run_commands(
        'python -c "from faster_whisper import download_model; '
        f"print(download_model('{WHISPER_MODEL}'))\""
    )
    .env(
        {
            # Later starts never reach for the hub; the baked model is used as it is.
            "HF_HUB_OFFLINE": "1",
            "WHISPER_MODEL": WHISPER_MODEL,
            "WHISPER_DEVICE": "cuda",
            "WHISPER_COMPUTE_TYPE": "float16",
            "LLM_MODEL": LLM_MODEL,
            # The call beyond the container's share is refused in words, never slowed down.
            "BOT_MAX_CALLS": str(CALLS_PER_CONTAINER),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Whole folders, not only .py files: the bot reads its prompts and the page's templates.
    .add_local_dir("bot", "/root/bot", ignore=["**/__pycache__"])
    .add_local_dir("webclient", "/root/webclient", ignore=["**/__pycache__"])
)

app = modal.App(APP_NAME)


def service_urls() -> dict[str, str]:
    """LLM_BASE_URL and XTTS_BASE_URL: the environment's, else the deployed apps' web URLs."""
    urls = {}
    if not os.environ.get("LLM_BASE_URL"):
        llm = modal.Function.from_name(LLM_APP, LLM_FUNCTION).get_web_url()
        urls["llm_base_url"] = f"{llm}/v1"
    if not os.environ.get("XTTS_BASE_URL"):
        urls["xtts_base_url"] = modal.Function.from_name(TTS_APP, TTS_FUNCTION).get_web_url()
    return urls


def build_app(settings: Settings | None = None) -> FastAPI:
    """The bot's app, built by the same factory as the local server's."""
    from bot.app import create_app
    from bot.config import load_settings

    return create_app(settings if settings is not None else load_settings(**service_urls()))


@app.function(
    image=image,
    gpu="T4",
    cpu=CALLS_PER_CONTAINER * CORES_PER_CALL + 1.0,
    secrets=[
        modal.Secret.from_name("voice-kit-llm-key", required_keys=["LLM_API_KEY"]),
        modal.Secret.from_name("voice-kit-bot"),
    ],
    # Whisper large-v3-turbo takes ~15 s to load: an idle container stays 5 minutes, so callers
    # arriving in the meantime (or a caller who reconnects) do not wait for a cold start.
    scaledown_window=5 * MINUTES,
    # A call is one long input (the WebSocket or the Twilio stream): allow an hour per call.
    timeout=60 * MINUTES,
)
# Several calls share one container and its GPU. Modal starts another container once the
# containers average CALLS_PER_CONTAINER inputs, and sends none past max_inputs.
@modal.concurrent(max_inputs=CALLS_PER_CONTAINER + SPARE_INPUTS, target_inputs=CALLS_PER_CONTAINER)
@modal.asgi_app()
def web() -> FastAPI:
    """Called once per container: one app, one Whisper model, many calls."""
    return build_app()


@app.local_entrypoint()
def smoke_test() -> None:
    """Wait until the deployed (or `modal serve`d) bot's /ready says Whisper, LLM and TTS are up."""
    import time
    import urllib.error
    import urllib.request

    url = web.get_web_url()
    deadline = time.monotonic() + 20 * MINUTES
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=5 * MINUTES) as response:
                print(url, "/ready ->", response.read().decode()[:300])
                return
        except urllib.error.HTTPError as error:  # 503 while anything is still loading
            if time.monotonic() > deadline:
                raise
            print(url, "/ready ->", error.code, error.read().decode()[:200])
            time.sleep(10)
