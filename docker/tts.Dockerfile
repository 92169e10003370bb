# syntax=docker/dockerfile:1.7
# The TTS server (XTTS v2 streaming contract): hibari and piper always; XTTS v2 with its weights
# when COQUI_TOS_AGREED=1. Built from uv.lock, like the test environment.
#
#   CUDA:  docker build -f docker/tts.Dockerfile --build-arg COQUI_TOS_AGREED=1 .
#   CPU:   ... --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu .
#
# torch: uv.lock holds PyPI's torch, whose Linux wheels are CUDA builds (several GB of CUDA
# libraries; they also run on a CPU). With TORCH_INDEX set, everything else still comes from
# uv.lock, and the locked torch and torchaudio versions come from that index instead (the CPU
# build: no CUDA libraries).

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${BASE_IMAGE}

# XTTS v2 is under the Coqui Public Model License (non-commercial use only). 1 accepts it: the
# image then carries coqui-tts, torch and the XTTS v2 weights. 0: hibari and piper only.
ARG COQUI_TOS_AGREED=0
ARG TORCH_INDEX=""
# The hub revision of coqui/XTTS-v2 to bake.
ARG XTTS_REVISION=main

ENV UV_PYTHON=3.11 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH

COPY --from=uv /uv /usr/local/bin/uv
RUN groupadd --gid 10001 kit \
    && useradd --create-home --uid 10001 --gid kit --shell /usr/sbin/nologin kit

WORKDIR /app

# Phase 1, dependencies only: this layer is rebuilt only when pyproject.toml, uv.lock or the
# build arguments change.
COPY pyproject.toml uv.lock ./
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
RUN --mount=type=cache,target=/root/.cache/uv \
    extras=(--extra tts --extra piper); \
    if [[ "$COQUI_TOS_AGREED" == 1 ]]; then extras+=(--extra xtts); fi; \
    skip=(); \
    if [[ -n "$TORCH_INDEX" ]]; then \
        mapfile -t skip < <(uv export --frozen --no-dev --no-hashes "${extras[@]}" \
            | sed -nE 's/^(torch|torchaudio|triton|nvidia-[a-z0-9-]+|cuda-[a-z0-9-]+)==.*/--no-install-package=\1/p'); \
    fi; \
    uv sync --frozen --no-dev --no-install-project "${extras[@]}" "${skip[@]}"; \
    if [[ -n "$TORCH_INDEX" && "$COQUI_TOS_AGREED" == 1 ]]; then \
        mapfile -t torch < <(uv export --frozen --no-dev --no-hashes "${extras[@]}" \
            | grep -oE '^torch(audio)?==[^ ;]+'); \
        uv pip install --no-deps --index-url "$TORCH_INDEX" "${torch[@]}"; \
    fi

# XTTS v2's weights, baked in (with the hub's progress bars in the build log).
RUN if [[ "$COQUI_TOS_AGREED" == 1 ]]; then \
        python -c "import sys; from huggingface_hub import snapshot_download; snapshot_download('coqui/XTTS-v2', revision=sys.argv[1], local_dir='/opt/models/xtts-v2', allow_patterns=['config.json', 'model.pth', 'vocab.json', 'speakers_xtts.pth'])" \
            "$XTTS_REVISION"; \
    else \
        echo "COQUI_TOS_AGREED is not 1: no XTTS v2 in this image (TTS_ENGINE=hibari or piper)"; \
    fi

# Phase 2, the code. The project itself is not installed: `python -m xtts` runs from /app.
COPY xtts/ xtts/

USER 10001:10001
EXPOSE 8001
CMD ["python", "-m", "xtts"]
