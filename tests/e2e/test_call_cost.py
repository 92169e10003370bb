"""`make call-cost`: the bot's CPU per call, sampled from /proc while real callers are connected
and silent, then speak, then hear the answer. Figures are not judged (docs/operations.md records
them); that each phase was measured and adds up is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.support import ROOT, free_port

pytestmark = pytest.mark.e2e


def test_call_cost_measures_each_phase_of_two_calls_on_noisy_lines(tmp_path, monkeypatch):
    for name in ("LLM_SERVER_PORT", "TTS_PORT"):
        monkeypatch.setenv(name, str(free_port()))
    monkeypatch.setenv("XTTS_BASE_URL", f"http://127.0.0.1:{os.environ['TTS_PORT']}")
    monkeypatch.setenv("BOT_MAX_CALLS", "1")  # raised to the calls asked for
    url = f"http://127.0.0.1:{free_port()}"
    folders = ["--questions", str(tmp_path / "questions"), "--out", str(tmp_path / "results")]
    run = subprocess.run(
        [sys.executable, "scripts/call_cost.py", "--url", url, "--calls", "2",
         "--idle-secs", "6", "--only", "zebras", "--room-db", "-50", *folders],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "results" / "call-cost.json").read_text())
    assert report["calls"] == 2 and "vCPU" in report["machine"]
    assert report["room_db"] == -50 and "room noise at -50.0 dBFS" in run.stdout
    for phase in ("idle", "listening", "talking"):
        measured = report[phase]
        # Each phase long enough to sample (the one answer may be a short sentence).
        assert measured["secs"] > 0.3, (phase, report)
        # A connected call costs something, and no more than the process spent.
        assert 0 < measured["per_call_pct"] <= measured["process_pct"], (phase, report)
    assert "| idle |" in run.stdout
    with pytest.raises(httpx.ConnectError):  # the stack it started is gone
        httpx.get(f"{url}/health", timeout=2)
