"""The LLM on Modal: vLLM serving Llama 3.1 8B Instruct on one A10G, OpenAI-compatible.

    modal deploy modal/vllm_app.py          # https://<workspace>--voice-kit-llm-serve.modal.run/v1
    modal run modal/vllm_app.py             # smoke test: one chat completion against the deployment

Needs two Modal Secrets (create them once, see docs/getting-started.md, "Modal"):
- `voice-kit-huggingface` with HF_TOKEN, of an account granted access to the gated Llama 3.1;
- `voice-kit-llm-key` with LLM_API_KEY, the bearer token vLLM demands (`--api-key`) and the
  bot sends. Web endpoints on Modal are public, so the key is what keeps the GPU to ourselves.

The file is not named vllm.py: `modal deploy` imports a script under its file name, which would
shadow the vllm package in the container.
"""

from __future__ import annotations

import os
import subprocess

import modal

APP_NAME = "voice-kit-llm"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
# The hub revision to serve; "main" follows the repository, a commit hash pins it.
MODEL_REVISION = os.environ.get("VLLM_MODEL_REVISION", "main")
VLLM_VERSION = "0.33.0"
PORT = 8000
MINUTES = 60

# CUDA graphs or not. VLLM_ENFORCE_EAGER=1 passes --enforce-eager, as the seed did: the container
# skips graph capture and compilation, so a cold start is roughly half a minute shorter, but every
# decoded token is slower. Default 0 (graphs on): a conversation pays decode speed on every
# reply, while cold starts are rare once the scaledown window keeps a container warm, and
# vLLM's compile cache lives in a Volume so only the first start compiles. Read at deploy time
# and baked into the image's environment, so the container sees the same choice.
ENFORCE_EAGER = os.environ.get("VLLM_ENFORCE_EAGER", "0") == "1"

image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install(f"vllm=={VLLM_VERSION}", "huggingface-hub[hf_transfer]>=0.34")
    .env(
        {
            "HF_HUB_ENABLE_HF_TRANSFER": "1",
            "VLLM_ENFORCE_EAGER": "1" if ENFORCE_EAGER else "0",
            "VLLM_MODEL_REVISION": MODEL_REVISION,
        }
    )
)

# The weights (~16 GB) are downloaded on the first start only; later containers read them here.
hf_cache = modal.Volume.from_name("voice-kit-hf-cache", create_if_missing=True)
vllm_cache = modal.Volume.from_name("voice-kit-vllm-cache", create_if_missing=True)
hf_secret = modal.Secret.from_name("voice-kit-huggingface", required_keys=["HF_TOKEN"])
api_key_secret = modal.Secret.from_name("voice-kit-llm-key", required_keys=["LLM_API_KEY"])

app = modal.App(APP_NAME)


def vllm_command(api_key: str, *, enforce_eager: bool = ENFORCE_EAGER) -> list[str]:
    """The `vllm serve` command line. 8192 tokens fit a 24 GB A10G with room for KV cache."""
    command = [
        "vllm",
        "serve",
        MODEL,
        "--revision",
        MODEL_REVISION,
        "--served-model-name",
        MODEL,
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        "--max-model-len",
        "8192",
        "--api-key",
        api_key,
    ]
    if enforce_eager:
        command.append("--enforce-eager")
    return command


@app.function(
    image=image,
    gpu="A10G",
    volumes={"/root/.cache/huggingface": hf_cache, "/root/.cache/vllm": vllm_cache},
    secrets=[hf_secret, api_key_secret],
    # A cold start (weights from the Volume, then load and warm-up) takes minutes: keep a
    # container for 15 idle minutes so a conversation rarely meets one.
    scaledown_window=15 * MINUTES,
    timeout=24 * 60 * MINUTES,
)
# vLLM batches requests itself: one container serves many concurrent conversations.
@modal.concurrent(max_inputs=32)
@modal.web_server(port=PORT, startup_timeout=15 * MINUTES)
def serve() -> None:
    """Start vLLM in the background; Modal routes traffic once the port answers."""
    api_key = os.environ["LLM_API_KEY"]
    command = vllm_command(api_key)
    print(" ".join(command).replace(api_key, "***"), flush=True)
    subprocess.Popen(command)


@app.local_entrypoint()
def smoke_test(prompt: str = "Say hello in five words.") -> None:
    """Ask the deployed (or `modal serve`d) model one question; LLM_API_KEY from the shell."""
    import json
    import urllib.request

    url = serve.get_web_url()
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(
            {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 32}
        ).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {os.environ['LLM_API_KEY']}",
        },
    )
    with urllib.request.urlopen(request, timeout=20 * MINUTES) as response:
        answer = json.load(response)
    print(url, "->", answer["choices"][0]["message"]["content"])
