"""The embedded LLM server's choice of GGUF (scripts/llm_server.py)."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize

from scripts import llm_server


@pytest.fixture
def no_hub(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the hub must not be asked")

    monkeypatch.setattr(llm_server, "hub_reachable", refuse)


def test_bundled_takes_smollm2_as_q8_0_without_asking_the_hub(no_hub, tmp_path, monkeypatch):
    monkeypatch.setattr(llm_server, "CACHE", tmp_path / "llm")
    path = llm_server.resolve_gguf("bundled", "some/repo", "some.gguf")
    assert path == tmp_path / "llm" / "SmolLM2-135M-Instruct.Q8_0.gguf"
    source, converted = gguf.GGUFReader(llm_server.bundled_gguf()), gguf.GGUFReader(path)
    assert not list((tmp_path / "llm").glob("*.part"))
    assert converted.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_Q8_0
    assert len(converted.fields) == len(source.fields)
    assert [t.name for t in converted.tensors] == [t.name for t in source.tensors]
    q4_1 = gguf.GGMLQuantizationType.Q4_1
    for before, after in zip(source.tensors, converted.tensors, strict=True):
        if before.tensor_type != q4_1:
            assert after.tensor_type == before.tensor_type
            assert np.array_equal(after.data, before.data)
            continue
        assert after.tensor_type == gguf.GGMLQuantizationType.Q8_0
        if not before.name.startswith(("blk.0.", "blk.29.")):
            continue  # the first and last layers' weights stand for the rest (seconds, not ten)
        weights = dequantize(before.data, q4_1)
        # Q8_0 steps each block of 32 by 1/127 of its largest weight: half a step off at most,
        # plus what rounding that step to float16 (2^-11) costs over 127 steps.
        step = np.abs(weights).reshape(-1, 32).max(axis=1, keepdims=True) / 127
        error = np.abs(dequantize(after.data, after.tensor_type) - weights).reshape(-1, 32)
        assert (error <= step * (0.5 + 127 * 2**-11) + 1e-7).all(), before.name
    # Once made, the copy is taken as it is.
    stamp = path.stat().st_mtime_ns
    assert llm_server.resolve_gguf("bundled", "r", "f") == path
    assert path.stat().st_mtime_ns == stamp


def test_the_package_file_is_served_where_the_copy_cannot_be_written(no_hub, tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setattr(llm_server, "CACHE", blocked / "llm")
    path = llm_server.resolve_gguf("bundled", "r", "f")
    assert path == llm_server.bundled_gguf() and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_a_path_is_taken_as_given_and_a_missing_one_is_refused(no_hub, tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert llm_server.resolve_gguf(str(gguf), "r", "f") == gguf
    with pytest.raises(SystemExit, match="LLM_GGUF: no such file"):
        llm_server.resolve_gguf(str(tmp_path / "absent.gguf"), "r", "f")


def test_auto_takes_the_model_chosen_for_the_machine_and_says_why(tmp_path, monkeypatch, caplog):
    from bot import llm_choice

    chosen = llm_choice.choose(cores=8, memory_gib=32)
    monkeypatch.setattr(llm_choice, "choose", lambda: chosen)
    monkeypatch.setattr(llm_server, "MODELS", tmp_path)
    (tmp_path / chosen.model.file).write_bytes(b"GGUF")  # downloaded before
    with caplog.at_level("INFO", logger="llm-server"):
        path = llm_server.resolve_gguf("auto")
    assert path == tmp_path / "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    assert "LLM_GGUF=auto: Llama-3.1-8B-Instruct (8 cores" in caplog.text
    # LLM_GGUF_REPO and LLM_GGUF_FILE, when set, are taken instead.
    (tmp_path / "mine.gguf").write_bytes(b"GGUF")
    assert llm_server.resolve_gguf("auto", "me/mine", "mine.gguf") == tmp_path / "mine.gguf"


def test_auto_takes_the_bundled_model_where_memory_is_short(no_hub, tmp_path, monkeypatch):
    from bot import llm_choice

    short = llm_choice.choose(cores=16, memory_gib=2)
    monkeypatch.setattr(llm_choice, "choose", lambda: short)
    monkeypatch.setattr(llm_server, "CACHE", tmp_path / "llm")
    path = llm_server.resolve_gguf("auto")
    assert path.name == "SmolLM2-135M-Instruct.Q8_0.gguf"
