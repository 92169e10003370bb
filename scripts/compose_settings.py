"""The variables only Docker Compose and the image scripts read, typed: `ComposeSettings`.

Declarative: no process reads this class at run time. Compose interpolates these variables itself
(`${NAME:-default}` in compose/compose.yaml), and the Makefile and scripts/base_image.py read a few
of them on their own. The class gives each one a type, its default and a description, so that
scripts/settings_docs.py writes them into `.env.example` and docs/configuration.md with the
settings of the processes, and the tests check compose.yaml's defaults against it
(tests/unit/test_compose.py) and that it names nothing else (tests/unit/test_env_example.py).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ComposeSettings(BaseSettings):
    """Docker Compose's own variables (make up-lite, up-cpu, up-nvidia, up-mac-cpu, up-metrics).

    Declarative: nothing reads this class at run time but scripts/settings_docs.py and the tests.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # The first field of each section, and its title (scripts/settings_docs.py).
    SECTIONS: ClassVar[dict[str, str]] = {
        "base_image": "Docker Compose (make up-lite, up-cpu, up-nvidia, up-mac-cpu): the images",
        "lite_whisper_model": "Compose's lite profile (make up-lite)",
        "coqui_tos_agreed": "Compose's TTS server and Whisper (the cpu and nvidia profiles)",
        "ollama_image": "Compose's Ollama (the cpu profile)",
        "vllm_image": "Compose's vLLM (the nvidia profile)",
        "prometheus_image": "Compose's metrics profile (make up-metrics)",
    }
    # What a section says before its variables, by its first field.
    SECTION_NOTES: ClassVar[dict[str, str]] = {
        "base_image": "Compose reads .env too (none is needed: every default here is also "
        "Compose's), and passes each container only the variables it names. Inside the "
        "stack the bot always calls http://llm:11434/v1 and http://tts:8001 (LLM_BASE_URL and "
        "XTTS_BASE_URL are for the native kit); each bot replica listens on 7860 and the kit's "
        "proxy publishes that port as BOT_PORT (docker/proxy.conf). Every setting that the bot or "
        "the TTS server reads reaches its container as well. Secrets (LLM_API_KEY, "
        "TWILIO_AUTH_TOKEN, HF_TOKEN) reach containers as files under /run/secrets, never as "
        "variables.",
        "lite_whisper_model": "Only the kit's own images, from Debian and PyPI packages.",
    }

    # The kit's images
    # Empty here: the Makefile picks the image it can get (scripts/base_image.py); Compose alone
    # takes python:3.11-slim-bookworm.
    base_image: str = Field(
        "",
        description="The base of the kit's images. Empty: python:3.11-slim-bookworm, or, where it "
        "cannot be pulled (no image registry), a Debian 12 image made once from Debian packages "
        "with debootstrap.",
    )
    cuda_base_image: str = Field(
        "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04",
        description="The bot's base in the nvidia profile: CUDA 12 and cuDNN 9 for faster-whisper",
    )
    debian_mirror: str = Field(
        "http://deb.debian.org/debian",
        description="The Debian mirror that Debian 12 image is made from",
    )
    debian_security_mirror: str = Field(
        "http://deb.debian.org/debian-security",
        description="The Debian security mirror that image is made from",
    )
    # Empty here: the Makefile hands Compose the host's bundle, or docker/no-build-ca.pem (an
    # empty file), Compose's own default.
    build_ca_bundle: str = Field(
        "",
        description="A CA bundle the image builds trust for https (behind a TLS-inspecting proxy), "
        "handed over as a BuildKit secret: never in a layer. Empty: the host's trust store (e.g. "
        "/etc/ssl/certs/ca-certificates.crt) when the Makefile runs Compose; none otherwise.",
    )

    # The lite profile
    lite_whisper_model: str = Field(
        "bundled",
        description="Whisper: bundled (tiny.en) or a CTranslate2 folder under models/, e.g. "
        "models/whisper-small-ct2",
    )
    lite_llm_gguf: str = Field(
        "bundled",
        description="The LLM: bundled (SmolLM2-135M-Instruct) or a GGUF under models/, e.g. "
        "models/qwen2.5-0.5b-instruct-q4_k_m.gguf",
    )
    lite_tts_engine: Literal["hibari", "piper"] = Field(
        "hibari", description="The TTS engine: hibari | piper"
    )

    # The cpu and nvidia profiles' TTS server and Whisper
    coqui_tos_agreed: Literal["0", "1"] = Field(
        "0",
        description="XTTS v2 is under the Coqui Public Model License (non-commercial use only). 1 "
        "accepts it: the TTS image is then built with coqui-tts, torch and the XTTS v2 weights. 0: "
        "hibari and piper only.",
    )
    stack_tts_engine: Literal["auto", "xtts", "hibari", "piper"] = Field(
        "auto",
        description="The TTS engine in the cpu and nvidia profiles: auto (XTTS v2 when the image "
        "carries it, i.e. it was built with COQUI_TOS_AGREED=1; else hibari) | xtts | hibari | "
        "piper. The mac-native profile's containers use TTS_ENGINE.",
    )
    stack_tts_threads: int = Field(
        4,
        ge=1,
        le=256,
        description="The TTS server's CPU threads in the cpu profile (torch's for XTTS v2; "
        "TTS_THREADS elsewhere)",
    )
    stack_gpu_whisper_model: str = Field(
        "large-v3-turbo",
        description="Whisper in the nvidia profile (float16 on CUDA); the CPU profiles use "
        "WHISPER_MODEL. Each is baked into the bot image at build: after changing one, run make "
        "models.",
    )

    # Ollama (the cpu profile)
    ollama_image: str = Field("ollama/ollama:0.22.1", description="Ollama's image")
    ollama_keep_alive: str = Field(
        "-1", description="How long Ollama keeps the model loaded (-1 = always)"
    )
    ollama_num_parallel: int = Field(1, ge=1, description="How many requests Ollama serves at once")

    # vLLM (the nvidia profile)
    vllm_image: str = Field(
        "vllm/vllm-openai:v0.33.0", description="vLLM's image (the vllm release modal/ installs)"
    )
    vllm_model: str = Field(
        "meta-llama/Llama-3.1-8B-Instruct",
        description="The hub model vLLM serves (under the name LLM_MODEL)",
    )
    vllm_max_model_len: int = Field(8192, ge=1, description="vLLM's longest context, in tokens")
    vllm_gpu_memory_utilization: float = Field(
        0.8,
        gt=0,
        le=1,
        description="A fraction of the whole GPU. 0.8 leaves about 4.5 GiB of a 24 GB card to XTTS "
        "v2 and Whisper.",
    )
    hf_token: SecretStr = Field(
        SecretStr(""),
        description="A Hugging Face token of an account granted access to VLLM_MODEL (Llama 3.1 is "
        "gated). Handed to vLLM as a Compose secret file; never baked into an image or set as a "
        "container variable.",
    )
    vllm_offline: Literal["0", "1"] = Field(
        "0",
        description="1 once vLLM has downloaded VLLM_MODEL into its volume: later starts never "
        "call the hub.",
    )

    # Prometheus (the metrics profile)
    prometheus_image: str = Field("prom/prometheus:v3.5.0", description="Prometheus's image")
    prometheus_port: int = Field(9090, ge=1, le=65535, description="The port of Prometheus's page")
