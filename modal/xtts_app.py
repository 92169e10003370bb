"""The kit's TTS server on Modal: `xtts.app.create_app` with XTTS v2 on one T4.

    modal deploy modal/xtts_app.py          # https://<workspace>--voice-kit-tts-web.modal.run
    modal run modal/xtts_app.py             # smoke test: /ready, then one short synthesis

XTTS v2 is under the Coqui Public Model License (non-commercial use only). Deploying this file
accepts it: COQUI_TOS_AGREED=1 is set below, where the weights are baked into the image.

The file is not named xtts.py: `modal deploy` imports a script under its file name, which would
shadow the xtts package it serves.
"""

from __future__ import annotations

import modal

APP_NAME = "voice-kit-tts"
MODEL_DIR = "/models/xtts-v2"
# The hub revision of coqui/XTTS-v2 to bake; "main" follows the repository, a commit pins it.
XTTS_REVISION = "main"
MINUTES = 60


# Runs once, at image build, as the TTS image's build does (docker/Dockerfile): the four files
# the engine loads.
DOWNLOAD_XTTS = (
    'python -c "from huggingface_hub import snapshot_download; '
    f"snapshot_download('coqui/XTTS-v2', revision='{XTTS_REVISION}', local_dir='{MODEL_DIR}', "
    "allow_patterns=['config.json', 'model.pth', 'vocab.json', 'speakers_xtts.pth'])\""
)

# Dependencies from uv.lock (the tts and xtts extras, as the TTS image installs them;
# PyPI's Linux torch is the CUDA build), then the weights, then the code: editing the code
# rebuilds only the last layer.
image = (
    modal.Image.debian_slim(python_version="3.11")
    .uv_sync(extras=["tts", "xtts"], extra_options="--no-dev", uv_version="0.13.9")
    .env({"COQUI_TOS_AGREED": "1"})
    .run_commands(DOWNLOAD_XTTS)
    .env(
        {
            "TTS_ENGINE": "xtts",
            "TTS_DEVICE": "cuda",
            "XTTS_MODEL_DIR": MODEL_DIR,
            "PYTHONUNBUFFERED": "1",
        }
    )
    .add_local_python_source("xtts")
)

app = modal.App(APP_NAME)


@app.function(
    image=image,
    gpu="T4",
    # Loading XTTS v2 takes ~20 s: keep an idle container 5 minutes so a pause in the
    # conversation does not meet a cold start.
    scaledown_window=5 * MINUTES,
    timeout=60 * MINUTES,
)
# One model instance synthesizes one stream at a time (the server queues the rest in order), so
# a few concurrent requests per container only wait in that queue rather than start containers
# for every sentence; more load than that starts another container.
@modal.concurrent(max_inputs=4)
@modal.asgi_app()
def web():
    """The TTS server's own app. Called once per container, so the model loads once."""
    from xtts.app import create_app
    from xtts.config import Settings

    return create_app(Settings())


@app.local_entrypoint()
def smoke_test(text: str = "Hello from the kit on Modal.") -> None:
    """Check the deployed (or `modal serve`d) server: wait until ready, then one synthesis."""
    import json
    import time
    import urllib.error
    import urllib.request

    url = web.get_web_url()
    deadline = time.monotonic() + 10 * MINUTES
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=5 * MINUTES) as response:
                print(url, "/ready ->", response.read().decode()[:200])
                break
        except urllib.error.HTTPError as error:  # 503 while the model loads
            if time.monotonic() > deadline:
                raise
            print(url, "/ready ->", error.code, "(loading)")
            time.sleep(5)
    with urllib.request.urlopen(f"{url}/studio_speakers", timeout=60) as response:
        voice, latents = next(iter(json.load(response).items()))
    request = urllib.request.Request(
        f"{url}/tts",
        data=json.dumps({"text": text, "language": "en", **latents}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        audio = response.read()
    print(f"{len(audio)} bytes of audio for {text!r} in {voice!r}")
