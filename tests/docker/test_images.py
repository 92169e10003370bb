"""The kit's images, built for real by Docker Compose through BuildKit: every profile's, with
no image registry; the CA bundle given as a build secret lands in no layer, and the build's
helper hands it to the downloads only when one is given; no image declares a secret; a code-only
change keeps the dependency layers; every image runs as a non-root user."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from scripts.bench_compose import compose_binary, copy_build_context
from tests.support import ARTIFACTS, ROOT
from tests.support.docker import docker

pytestmark = pytest.mark.docker

CUDA_BASE = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
# Every image each profile builds, by tag.
IMAGES = {
    "lite": [
        "offgrid-voice-kit/bot:lite",
        "offgrid-voice-kit/tts:lite",
        "offgrid-voice-kit/llm:lite",
    ],
    "cpu": ["offgrid-voice-kit/bot:cpu", "offgrid-voice-kit/tts:cpu"],
    "nvidia": ["offgrid-voice-kit/bot:cuda", "offgrid-voice-kit/tts:cuda"],
}
# The proxy in front of the bot's replicas (every profile's, from the base image alone).
PROXY = "offgrid-voice-kit/proxy"
# What each image's program imports first: the image is usable, not merely built.
ENTRYPOINT_MODULES = {"bot": "bot.app", "tts": "xtts.app", "llm": "xllamacpp"}
# What is only ever handed to a running container, as a secret file or its environment.
SECRETS = ("HF_TOKEN", "TWILIO_", "LLM_API_KEY")


def compose(
    args: list[str], env: dict[str, str], compose_file: Path = ROOT / "compose" / "compose.yaml"
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*compose_binary(), "-f", str(compose_file), *args],
        env={**os.environ, "DOCKER_BUILDKIT": "1", **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )


def build_env(base_image: str, bundle: Path) -> dict[str, str]:
    """Build arguments where this machine's network differs from a user's: the base images from
    scripts/base_image.py when the official ones cannot be pulled, and the bundled Whisper, as no
    model hub answers here."""
    cuda_base = CUDA_BASE if _has_image(CUDA_BASE) else base_image
    return {
        "BASE_IMAGE": base_image,
        "CUDA_BASE_IMAGE": cuda_base,
        "WHISPER_MODEL": "bundled",
        "STACK_GPU_WHISPER_MODEL": "bundled",
        "COQUI_TOS_AGREED": "0",
        "BUILD_CA_BUNDLE": str(bundle),
        "COMPOSE_PROJECT_NAME": "offgrid-voice-kit-build",
    }


def _has_image(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def test_every_profiles_images_build_without_a_registry(base_image, build_ca):
    bundle, _ = build_ca
    profiles = [arg for profile in (*IMAGES, "mac-native") for arg in ("--profile", profile)]
    result = compose(["--progress", "plain", *profiles, "build"], build_env(base_image, bundle))
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "docker-build.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-6000:]
    for tags in IMAGES.values():
        for tag in tags:
            role = tag.split("/")[1].split(":")[0]
            docker(
                "run",
                "--rm",
                "--entrypoint",
                "python",
                tag,
                "-c",
                f"import {ENTRYPOINT_MODULES[role]}",
            )


def every_image() -> list[str]:
    return [*(tag for tags in IMAGES.values() for tag in tags), PROXY]


def test_every_image_runs_as_a_non_root_user(base_image):
    for tag in every_image():
        config = json.loads(docker("image", "inspect", tag))[0]["Config"]
        assert config["User"] == "10001:10001", tag
        assert config["Cmd"], tag  # its program, run as that user
        assert docker("run", "--rm", "--entrypoint", "id", tag, "-u").strip() == "10001"


def test_no_image_declares_a_secret(base_image):
    """No secret is an image's variable, nor a build argument its history records."""
    for tag in every_image():
        config = json.loads(docker("image", "inspect", tag))[0]["Config"]
        names = [variable.partition("=")[0] for variable in config["Env"] or []]
        assert not [name for name in names if name.startswith(SECRETS)], (tag, names)
        history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
        assert not [secret for secret in SECRETS if secret in history], tag


def test_the_build_ca_helper_hands_the_bundle_to_downloads_only_when_there_is_one(
    base_image, build_ca
):
    """docker/with-build-ca, in an image, with the secret mounted where BuildKit mounts it: a
    bundle is what uv, pip, the hub's client and curl then trust; an empty one (Compose's
    default, docker/no-build-ca.pem) changes nothing."""
    bundle, _ = build_ca
    variables = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")

    def trusted(secret: Path, *helper: str) -> dict[str, str]:
        mount = f"type=bind,source={secret},target=/run/secrets/build_ca,readonly"
        image = "offgrid-voice-kit/llm:lite"
        printed = docker("run", "--rm", "--mount", mount, "--entrypoint", "env", image, *helper)
        pairs = (line.partition("=") for line in printed.splitlines())
        return {name: value for name, _, value in pairs if name in variables}

    given = trusted(bundle, "with-build-ca", "env")
    assert given == dict.fromkeys(variables, "/run/secrets/build_ca")
    empty = ROOT / "docker" / "no-build-ca.pem"
    assert trusted(empty, "with-build-ca", "env") == trusted(empty)


def _layers_contain(image: str, needles: list[bytes]) -> list[bytes]:
    """Which of `needles` appear anywhere in `image`'s saved layers (uncompressed tar streams)."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    assert save.stdout is not None
    overlap = max(len(n) for n in needles)
    found: set[bytes] = set()
    tail = b""
    while chunk := save.stdout.read(1 << 22):
        window = tail + chunk
        found.update(n for n in needles if n in window)
        tail = window[-overlap:]
    assert save.wait() == 0, f"docker save {image} failed"
    return sorted(found)


def test_the_build_ca_bundle_reaches_no_layer(base_image, build_ca):
    """The bundle carries a marker line that exists nowhere else: no image may hold it. In a
    fresh CI run every image was built with this bundle; one is rebuilt without the cache here,
    so that at least one build certainly ran each download step with it."""
    bundle, marker = build_ca
    env = build_env(base_image, bundle)
    result = compose(["--profile", "lite", "build", "--no-cache", "llm-lite"], env)
    assert result.returncode == 0, result.stderr[-4000:]
    # The marker, and the bundle's tail as one piece (its last certificates, then the marker).
    needles = [marker, bundle.read_bytes()[-2048:]]
    for tags in IMAGES.values():
        for tag in tags:
            assert _layers_contain(tag, needles) == [], f"the build's CA bundle is in {tag}"
            metadata = docker("image", "inspect", tag) + docker("history", "--no-trunc", tag)
            assert marker.decode() not in metadata and "BEGIN CERTIFICATE" not in metadata


def test_the_layer_scan_finds_what_an_image_holds(tmp_path):
    """The scan itself: bytes that are in a layer are found (so an empty result means absence)."""
    needle = b"# a marker the image holds"
    context = tmp_path / "context"
    context.mkdir()
    (context / "marker.txt").write_bytes(b"before\n" + needle + b"\nafter\n")
    (context / "Dockerfile").write_text("FROM offgrid-voice-kit/llm:lite\nCOPY marker.txt /tmp/\n")
    docker("build", "--tag", "offgrid-voice-kit/scan-check:test", str(context), timeout=300)
    try:
        assert _layers_contain("offgrid-voice-kit/scan-check:test", [needle, b"absent" * 20]) == [
            needle
        ]
    finally:
        docker("rmi", "offgrid-voice-kit/scan-check:test")


def test_a_code_change_rebuilds_only_the_code_layers(base_image, build_ca, tmp_path):
    """The build context copied (under another image tag), one line of bot/ changed: every
    layer up to and including the dependencies is reused; only the code layers differ."""
    bundle, _ = build_ca
    compose_file = copy_build_context(tmp_path / "kit")
    context = tmp_path / "kit"
    tag = "offgrid-voice-kit/bot:rebuild-test"
    compose_file.write_text(compose_file.read_text().replace("offgrid-voice-kit/bot:lite", tag))
    env = build_env(base_image, bundle)
    build = ["--profile", "lite", "build", "bot-lite"]
    try:
        assert compose(build, env, compose_file).returncode == 0
        before = _layers(tag)
        assert before == _layers("offgrid-voice-kit/bot:lite"), "the copy builds the same image"
        with (context / "bot" / "__init__.py").open("a") as init:
            init.write("# a code-only change\n")
        rebuilt = compose(["--progress", "plain", *build], env, compose_file)
        assert rebuilt.returncode == 0, rebuilt.stderr[-4000:]
        after = _layers(tag)
    finally:
        subprocess.run(["docker", "rmi", tag], capture_output=True)
    sync = r"uv sync --frozen --no-dev --no-install-project --extra bot\n#\d+ CACHED"
    assert re.search(sync, rebuilt.stdout), "the dependency layer was rebuilt"
    first_change = next(i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b)
    # The code comes last: bot/, then webclient/ (unchanged, but above a changed layer).
    assert len(before) - first_change == 2


def _layers(image: str) -> list[str]:
    return json.loads(docker("image", "inspect", image))[0]["RootFS"]["Layers"]
