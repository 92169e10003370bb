"""A real Docker engine and the kit's Compose stack, started the way a user starts them.

The engine: Docker's own when one answers; else, as root, Debian's `docker.io` is installed when
`dockerd` is missing and a `dockerd` is started for these tests (and stopped after them: only what
the suite started is stopped). Without root and without an engine the suite is skipped, saying so.

The stack: `make up-lite` under its own Compose project name and a free port, with two bot
replicas of two lines each behind the proxy, the host's CA bundle (plus a marker line) as the
build secret, and `make down` at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ARTIFACTS, ROOT, free_port, stop_process
from tests.support.docker import KIT_LABEL, LINES, PROJECT, REPLICAS, LiteStack, make

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def engine_answers() -> bool:
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _dockerd() -> str | None:
    return shutil.which("dockerd", path=f"/usr/sbin:/usr/bin:{os.environ.get('PATH', '')}")


def start_engine() -> subprocess.Popen:
    """Debian's docker.io, installed when dockerd is missing, and a dockerd for this session."""
    if os.geteuid() != 0:
        pytest.skip("no Docker engine answers, and installing or starting one needs root")
    if _dockerd() is None:
        apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "docker.io"],
            check=True,
            env=apt,
            timeout=900,
            stdout=subprocess.DEVNULL,
        )
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "dockerd.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [_dockerd() or "dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 90
    while not engine_answers():
        if daemon.poll() is not None or time.monotonic() > deadline:
            stop_process(daemon)
            pytest.fail(f"dockerd did not answer within 90 s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    return daemon


@pytest.fixture(scope="package")
def docker_engine() -> Iterator[None]:
    daemon = None if engine_answers() else start_engine()
    try:
        yield
    finally:
        # The suite's rebuilds leave untagged kit images behind; only those go.
        subprocess.run(
            ["docker", "image", "prune", "--force", "--filter", f"label={KIT_LABEL}"],
            capture_output=True,
        )
        if daemon is not None:
            stop_process(daemon, timeout=60)


@pytest.fixture(scope="package")
def base_image(docker_engine) -> str:
    """The base the kit's images build on here (the official image, else one from Debian)."""
    result = subprocess.run(
        ["python3", "scripts/base_image.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="package")
def build_ca(tmp_path_factory) -> tuple[Path, bytes]:
    """The host's CA bundle with a unique marker line (PEM readers skip text between
    certificates): the bundle the images are built with, and bytes no layer may contain."""
    marker = f"# offgrid-voice-kit build secret {secrets.token_hex(16)}".encode()
    bundle = tmp_path_factory.mktemp("ca") / "build-ca.pem"
    host = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.is_file() else b""
    bundle.write_bytes(host + b"\n" + marker + b"\n")
    return bundle, marker


# The stack runs only while its own tests do: left up, its containers would share the CPU
# with every later test.
@pytest.fixture(scope="module")
def lite_stack(docker_engine, base_image, build_ca) -> Iterator[LiteStack]:
    bundle, _ = build_ca
    port = free_port()
    known_secrets = {
        "LLM_API_KEY": f"llm-key-{secrets.token_hex(8)}",
        "TWILIO_AUTH_TOKEN": f"twilio-token-{secrets.token_hex(8)}",
    }
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "BOT_PORT": str(port),
        "BOT_REPLICAS": str(REPLICAS),
        "BOT_MAX_CALLS": str(LINES),
        "BUILD_CA_BUNDLE": str(bundle),
        **known_secrets,
    }
    # The outer `make test` must not leak its own flags into the inner make.
    for name in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):
        env.pop(name, None)
    stack = LiteStack(f"http://127.0.0.1:{port}", env, known_secrets)
    started = make("up-lite", env, timeout=1800)
    try:
        assert started.returncode == 0, started.stdout[-4000:] + started.stderr[-4000:]
        assert httpx.get(f"{stack.url}/ready", timeout=10).status_code == 200
        yield stack
    finally:
        stack.save_logs()
        make("down", env, timeout=300)
