"""The type checker (pyright, configured in pyproject.toml) finds nothing in bot/ and xtts/.

The same check as `make lint`, here so that CI (`make test`) runs it too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

# The venv's own pyright: its wheel bundles the checker, and its nodejs extra Node.js.
PYRIGHT = Path(sys.executable).parent / "pyright"


def test_bot_and_xtts_type_check_clean():
    assert PYRIGHT.exists(), f"no {PYRIGHT}: uv sync installs it (the dev group)"
    run = subprocess.run(
        [str(PYRIGHT), "--outputjson"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    report = json.loads(run.stdout)
    errors = [
        f"{d['file']}:{d['range']['start']['line'] + 1}: {d['message']}"
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    ]
    assert errors == [], "\n".join(errors)
    assert report["summary"]["filesAnalyzed"] > 0
