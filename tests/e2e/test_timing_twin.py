"""Timing twins built by scripts/timing_twin.py, checked against llama.cpp itself: the bundled
model's twin has its every tensor's shape and type, and a twin of a hub model loads in llama.cpp's
server with the real model's vocabulary, width and parameter count, and writes tokens."""

from __future__ import annotations

import gguf
import httpx
import pytest

from scripts.llm_server import fast_bundled_gguf, serve
from scripts.timing_twin import MODELS, build, parameters, twin_of
from tests.support import free_port

pytestmark = pytest.mark.e2e


def test_the_bundled_models_twin_has_its_tensors(tmp_path):
    real, twin = (
        gguf.GGUFReader(fast_bundled_gguf()),
        gguf.GGUFReader(build("smollm2-135m", out=tmp_path)),
    )
    layout = sorted((t.name, list(t.shape), t.tensor_type) for t in real.tensors)
    tensors = {t.name: (t.name, list(t.shape), t.tensor_type) for t in twin.tensors}
    # The tied output matrix, written out separately: the embedding's shape and type.
    output = tensors.pop("output.weight")
    assert output[1:] == tensors["token_embd.weight"][1:]
    assert sorted(tensors.values()) == layout
    assert twin_of(fast_bundled_gguf()) is None


def hello(url: str, tokens: int) -> dict:
    """llama.cpp's answer to "Hello", `tokens` tokens long."""
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Hello"}], "max_tokens": tokens},
        timeout=120,
    ).json()


def test_a_hub_models_twin_loads_in_llama_cpp_and_writes(tmp_path):
    path = build("qwen2.5-1.5b", out=tmp_path)
    assert twin_of(path) == "Qwen/Qwen2.5-1.5B-Instruct"
    assert not list(tmp_path.glob("*.part"))
    port = free_port()
    server = serve(path, "127.0.0.1", port, threads=1, ctx=1024, parallel=1)
    url = f"http://127.0.0.1:{port}"
    try:
        meta = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["meta"]
        config = MODELS["qwen2.5-1.5b"]
        assert meta["n_vocab"] == config.vocab and meta["n_embd"] == config.hidden
        assert meta["n_params"] == parameters(config) + config.hidden * config.vocab  # tied
        assert httpx.get(f"{url}/props", timeout=10).json()["model_ftype"] == "Q4_K - Medium"
        answer = hello(url, 4)
        assert answer["usage"]["completion_tokens"] == 4
        # Words, not sub-word noise: about a token a word.
        assert len(answer["choices"][0]["message"]["content"].split()) >= 3, answer
    finally:
        del server


def test_a_draft_model_of_the_family_drafts_for_the_served_one(tmp_path):
    """LLM_DRAFT_GGUF: llama.cpp's speculative decoding, the bundled SmolLM2-135M drafting for
    a model with its tokenizer (here a twin of SmolLM2-135M itself). It runs and drafts; what it
    gains cannot be measured with a twin, whose random weights never agree with the draft."""
    port = free_port()
    server = serve(
        build("smollm2-135m", out=tmp_path), "127.0.0.1", port, threads=1, ctx=512,
        parallel=1, draft=fast_bundled_gguf(),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        tags = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["tags"]
        assert f"draft={fast_bundled_gguf().name}" in tags
        answer = hello(url, 16)
        assert answer["usage"]["completion_tokens"] == 16
        assert answer["timings"].get("draft_n", 0) > 0, answer["timings"]
    finally:
        del server
