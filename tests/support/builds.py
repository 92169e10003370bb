"""A build step (a Dockerfile's RUN, a Modal image's run_commands) run on this machine as it is
written, with what it would download faked: programs on PATH and Python functions that record how
they were called, so that a test checks what the step does rather than how its text reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# A recording program: `record.py NAME STDOUT_FILE [THEN] -- ARGS...` notes NAME and ARGS, prints
# STDOUT_FILE's text, then, if THEN is given, becomes THEN with the same ARGS.
_RECORD = """\
import json, os, sys
name, stdout, then = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[5:]
with open(os.environ["RECORDED_CALLS"], "a") as calls:
    calls.write(json.dumps({"name": name, "args": args}) + "\\n")
with open(stdout) as text:
    sys.stdout.write(text.read())
sys.stdout.flush()
if then:
    os.execv(then, [then, *args])
"""

# A recording Python function (in a module that stands in for the real one).
_FUNCTION = """
def {function}(*args, **kwargs):
    import json, os
    with open(os.environ["RECORDED_CALLS"], "a") as calls:
        call = {{"name": "{module}.{function}", "args": list(args), "kwargs": kwargs}}
        calls.write(json.dumps(call) + "\\n")
    return "/faked/{function}"
"""


class FakedBuild:
    """Where a step runs: `program` and `module` fake what it reaches for, `run` runs it, and
    `calls` is what the fakes were asked, in order."""

    def __init__(self, tmp_path: Path):
        self.root = tmp_path / "faked-build"
        self.bin = self.root / "bin"
        self.python_path = self.root / "python"
        for folder in (self.bin, self.python_path):
            folder.mkdir(parents=True)
        self.log = self.root / "calls.jsonl"
        self.log.touch()
        (self.root / "record.py").write_text(_RECORD)
        # The step's `python` is this interpreter (its fakes first on its path).
        for name in ("python", "python3"):
            self._script(name, f'exec "{sys.executable}" "$@"')

    def _script(self, name: str, body: str) -> None:
        path = self.bin / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    def program(self, name: str, stdout: str = "", then: Path | None = None) -> None:
        """`name` on the step's PATH: it records its arguments, prints `stdout`, then runs
        `then` (a real program) with them if given."""
        text = self.root / f"{name}.stdout"
        text.write_text(stdout)
        record = self.root / "record.py"
        self._script(
            name, f'exec "{sys.executable}" "{record}" {name} "{text}" "{then or ""}" -- "$@"'
        )

    def module(self, name: str, *functions: str) -> None:
        """A Python module `name` in place of the real one, whose `functions` record their
        arguments (and return a placeholder path)."""
        source = "".join(_FUNCTION.format(module=name, function=f) for f in functions)
        (self.python_path / f"{name}.py").write_text(source)

    def run(
        self, script: str, shell: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run `script` as `shell` runs it (e.g. ["/bin/bash", "-euo", "pipefail", "-c"]) with
        `env` (a Dockerfile's build arguments, say); fail with its output if it fails."""
        result = subprocess.run(
            [*shell, script],
            cwd=self.root,
            env={
                "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
                "PYTHONPATH": str(self.python_path),
                "RECORDED_CALLS": str(self.log),
                **(env or {}),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{script}\n{result.stdout}{result.stderr}"
        return result

    @property
    def calls(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def of(self, name: str) -> list[dict]:
        """The calls of program or function `name` (e.g. "uv", "huggingface_hub.snapshot_download")."""
        return [call for call in self.calls if call["name"] == name]
