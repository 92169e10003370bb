"""`make bench COMPARE=seed` on a few of the varied questions, against the real stack: both
configurations measured on the same questions, every stage reported, the three outputs written.
Figures are not judged here (docs/benchmarks.md records them); their presence and consistency are."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from bot.latency import STAGES
from scripts.timing_twin import build
from tests.support import ROOT, free_port, server_process
from tests.support.phone import phone_bot_env

pytestmark = pytest.mark.e2e

# From the turn set's dev part: two sentences 0.38 s apart (festival), an opening left over a
# 0.73 s pause (piper), a statement over three other people talking (flite).
QUESTIONS = ["goldfish", "ice-floats", "favourite-colour"]


def bench(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """`scripts/bench.py` with `args`, its questions and results under `tmp_path`; it must pass."""
    folders = ["--questions", str(tmp_path / "questions"), "--out", str(tmp_path / "results")]
    run = subprocess.run(
        [sys.executable, "scripts/bench.py", *args, *folders],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_bench_compares_the_kit_with_the_seed(stack, tmp_path):
    out = tmp_path / "results"
    run = bench(tmp_path, "--url", stack.bot_url, "--compare", "seed", "--only", *QUESTIONS)

    report = json.loads((out / "bench.json").read_text())
    assert report["questions"] == len(QUESTIONS)
    kit = report["summary"]["kit"]
    # The kit answers every turn. Whether one is cut into is a figure of the benchmark, which
    # moves from run to run on shared cores (a 0.37 s gap between two sentences against a 0.4 s
    # wait), not something to assert.
    assert (kit["errors"], kit["unanswered"]) == (0, []), report["turns"]["kit"]
    assert kit["measured"] + kit["cut"] == len(QUESTIONS), report["turns"]["kit"]
    assert set(kit["by_condition"]) == {"clean", "babble 15 dB"}
    # Every turn is in the seed's report too, answered or reported unanswered.
    seed = report["summary"]["seed"]
    assert seed["turns"] == len(QUESTIONS) and seed["measured"] >= 1, report["turns"]["seed"]
    for config in ("kit", "seed"):
        assert set(report["summary"][config]["stages_ms"]) == set(STAGES)
        for turn in report["turns"][config]:
            if turn["total_ms"] is None or turn["cut"]:
                continue
            assert turn["total_ms"] == pytest.approx(sum(turn["stages_ms"].values()), abs=1)
            assert turn["caller_ms"] is not None and turn["caller_ms"] > 0
            assert turn["heard"].strip() and turn["answer"].strip(), turn
    assert set(report["ratio"]) == {*STAGES, "total", "caller"}
    assert report["ratio"]["total"] > 0

    table = (out / "bench.md").read_text()
    assert "| kit | median |" in table and "| seed | p95 |" in table and "kit ÷ seed" in table
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "written to" in run.stdout


def test_bench_under_load_reports_the_refused_call(stack, tmp_path):
    """`--calls 2` against a bot that takes one call: one call is answered, the other refused,
    and the report says so rather than failing."""
    port = free_port()
    env = phone_bot_env(stack, port, BOT_MAX_CALLS="1")
    url = f"http://127.0.0.1:{port}"
    out = tmp_path / "results"
    with server_process(["-m", "bot"], env=env, ready_url=f"{url}/ready", name="load-bot"):
        bench(tmp_path, "--url", url, "--calls", "2", "--only", "zebras", "bubbles")
    report = json.loads((out / "bench.json").read_text())
    load = report["summary"]["2 calls"]
    assert report["calls"] == 2
    assert (load["refused"], load["measured"], load["cut"]) == (1, 1, 0), report["turns"]
    assert "2 calls at once" in (out / "bench.md").read_text()


def test_bench_starts_the_stack_on_a_timing_twin_and_names_it(tmp_path, monkeypatch):
    """`make bench LLM=…`: the benchmark starts `make run`'s stack serving the GGUF given (here
    the bundled model's twin), and every record names the model, its threads and pace."""
    twin = build("smollm2-135m", out=tmp_path)
    for name, port in [("LLM_SERVER_PORT", free_port()), ("TTS_PORT", free_port())]:
        monkeypatch.setenv(name, str(port))
    monkeypatch.setenv("XTTS_BASE_URL", f"http://127.0.0.1:{os.environ['TTS_PORT']}")
    url = f"http://127.0.0.1:{free_port()}"
    run = bench(tmp_path, "--llm", str(twin), "--url", url, "--only", "zebras")
    report = json.loads((tmp_path / "results" / "bench.json").read_text())
    llm = report["llm"]
    assert llm["timing-twin-of"] == "HuggingFaceTB/SmolLM2-135M-Instruct", llm
    assert llm["quantisation"] == "Q8_0" and llm["generation-threads"] >= 1, llm
    assert llm["tokens_per_s"] > 0 and llm["warm_first_token_ms"] > 0, llm
    assert (
        "SmolLM2-135M-Instruct timing twin, Q8_0" in (tmp_path / "results" / "bench.md").read_text()
    )
    assert "LLM: SmolLM2-135M-Instruct timing twin" in run.stdout
    (turn,) = report["turns"]["kit"]
    assert turn["total_ms"] is not None and turn["longest_gap_ms"] is not None, turn
    with pytest.raises(httpx.ConnectError):  # the stack it started is gone
        httpx.get(f"{url}/health", timeout=2)
