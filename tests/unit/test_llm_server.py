"""The embedded LLM server's choice of GGUF (scripts/llm_server.py)."""

from __future__ import annotations

import pytest

from scripts import llm_server


@pytest.fixture
def no_hub(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the hub must not be asked")

    monkeypatch.setattr(llm_server, "hub_reachable", refuse)


def test_bundled_takes_smollm2_without_asking_the_hub(no_hub):
    path = llm_server.resolve_gguf("bundled", "some/repo", "some.gguf")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_a_path_is_taken_as_given_and_a_missing_one_is_refused(no_hub, tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    assert llm_server.resolve_gguf(str(gguf), "r", "f") == gguf
    with pytest.raises(SystemExit, match="LLM_GGUF: no such file"):
        llm_server.resolve_gguf(str(tmp_path / "absent.gguf"), "r", "f")
