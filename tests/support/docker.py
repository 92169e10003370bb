"""The Docker engine and the kit's Compose stack as the Docker suite drives them (the engine
and the stack themselves are tests/docker/conftest.py's fixtures): `docker` and `make` as a user
types them, and the running stack's containers."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field

from tests.support import ARTIFACTS, ROOT

PROJECT = "offgrid-voice-kit-test"
# The label docker/Dockerfile puts on every image it builds.
KIT_LABEL = "org.opencontainers.image.title=offgrid-voice-kit"
REPLICAS = 2  # bot processes behind the proxy
LINES = 2  # calls each takes


def docker(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout


@dataclass
class LiteStack:
    """The running stack: its published URL, the environment `make` ran with, the secrets it got."""

    url: str
    env: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)

    def _ps(self, *args: str, service: str = "") -> str:
        labels = [f"com.docker.compose.project={PROJECT}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return docker("ps", *(f"--filter=label={label}" for label in labels), *args)

    def container(self, service: str) -> str:
        ids = self._ps("--quiet", service=service).split()
        assert len(ids) == 1, f"{service}: {ids}"
        return ids[0]

    def replicas(self, service: str = "bot-lite") -> dict[str, str]:
        """The service's containers by hostname: the name the proxy routes each one by."""
        ids = self._ps("--quiet", service=service).split()
        return {self.inspect(c)["Config"]["Hostname"]: c for c in ids}

    def containers(self, *, all_states: bool = False) -> list[str]:
        return self._ps("--quiet", *(["--all"] if all_states else [])).split()

    def inspect(self, container: str) -> dict:
        return json.loads(docker("inspect", container))[0]

    def save_logs(self) -> None:
        """Each container's log, by service, in test-artifacts/ (for a failure's post-mortem)."""
        listing = self._ps("--all", "--format", '{{.ID}} {{.Label "com.docker.compose.service"}}')
        for line in listing.splitlines():
            container, service = line.split()
            with (ARTIFACTS / f"docker-{service}.log").open("w") as out:
                subprocess.run(["docker", "logs", container], stdout=out, stderr=subprocess.STDOUT)


def make(target: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`make <target>` as a user types it, its output kept in test-artifacts/."""
    result = subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"make-{target}.log").write_text(result.stdout + result.stderr)
    return result
