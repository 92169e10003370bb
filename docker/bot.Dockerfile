# syntax=docker/dockerfile:1.7
# The voice bot: the Pipecat pipeline, Whisper (faster-whisper, in-process) and the page.
# No torch. Built from uv.lock, like the test environment.
#
#   CPU  (default):  docker build -f docker/bot.Dockerfile .
#   CUDA:            docker build -f docker/bot.Dockerfile \
#                      --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#                      --build-arg WHISPER_MODEL=large-v3-turbo .
#
# WHISPER_MODEL is downloaded here, once, and the image runs with the hub switched off: the
# container's WHISPER_MODEL must name the model it was built with (compose passes the same value).

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${BASE_IMAGE}

ARG WHISPER_MODEL=base.en

# UV_PYTHON: the base image's Python 3.11 when it has one (python:3.11-slim), else one that uv
# installs under /opt/python (the CUDA base has none).
ENV UV_PYTHON=3.11 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/opt/models/hf \
    PATH=/app/.venv/bin:$PATH

COPY --from=uv /uv /usr/local/bin/uv
RUN groupadd --gid 10001 kit \
    && useradd --create-home --uid 10001 --gid kit --shell /usr/sbin/nologin kit

WORKDIR /app

# Phase 1, dependencies only: this layer is rebuilt only when pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --extra bot

# Whisper, baked in (with the hub's progress bars in the build log).
RUN python -c "import sys; from faster_whisper import download_model; print(download_model(sys.argv[1]))" \
        "$WHISPER_MODEL"

# Phase 2, the code. The project itself is not installed: `python -m bot` runs from /app.
COPY bot/ bot/
COPY webclient/ webclient/

# Later starts never reach for the hub; the baked model is used as it is.
ENV HF_HUB_OFFLINE=1

USER 10001:10001
EXPOSE 7860
CMD ["python", "-m", "bot"]
