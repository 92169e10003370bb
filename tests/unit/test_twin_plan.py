"""Timing twins' plans (scripts/timing_twin.py): the named models' sizes and llama.cpp's types."""

from __future__ import annotations

import pytest

from scripts.timing_twin import MODELS, parameters, tensor_type

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("model", "published"),
    [
        ("smollm2-135m", 134.5e6),
        ("smollm2-1.7b", 1.711e9),
        ("qwen2.5-1.5b", 1.544e9),  # Qwen's model card: 1.54 B
        ("llama-3.2-3b", 3.213e9),
        ("llama-3.1-8b", 8.030e9),
    ],
)
def test_a_twin_has_the_real_models_parameter_count(model, published):
    assert parameters(MODELS[model]) == pytest.approx(published, rel=1e-3)


def test_q4_k_m_gives_the_output_and_a_third_of_the_value_and_down_projections_q6_k():
    layers = 32  # llama.cpp's use_more_bits: the first and last eighth, then every third
    more = [i for i in range(layers) if tensor_type(f"blk.{i}.ffn_down.weight", "Q4_K_M", layers, False) == "Q6_K"]  # fmt: skip
    assert more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert tensor_type("blk.5.attn_q.weight", "Q4_K_M", layers, False) == "Q4_K"
    assert tensor_type("output.weight", "Q4_K_M", layers, False) == "Q6_K"
    assert tensor_type("token_embd.weight", "Q4_K_M", layers, False) == "Q4_K"
    assert tensor_type("token_embd.weight", "Q4_K_M", layers, True) == "Q6_K"  # it is the output
    assert tensor_type("token_embd.weight", "Q8_0", layers, True) == "Q8_0"
    assert tensor_type("blk.0.attn_q.bias", "Q4_K_M", layers, False) == "F32"
    assert tensor_type("blk.0.ffn_norm.weight", "Q4_0", layers, False) == "F32"


def test_llama_cpp_writes_on_every_core_but_one_unless_told():
    from scripts.llm_server import generation_threads

    assert generation_threads(0, cores=2) == 1
    assert generation_threads(0, cores=16) == 15
    assert generation_threads(0, cores=1) == 1
    assert generation_threads(3, cores=2) == 3  # LLM_THREADS decides when set
