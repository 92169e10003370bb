"""Timing twins: GGUFs with a real model's shapes, quantisation and vocabulary, and random weights.

    python scripts/timing_twin.py MODEL [--quant Q4_K_M] [--out models/twins]
    make twin MODEL=llama-3.1-8b

llama.cpp's speed on a CPU depends on its tensors' shapes and types, not their values, so a twin
reads prompts and writes tokens at the real model's speed where the real weights cannot be
fetched (no model hub). What it writes is noise: it never ends an answer by itself and its
sentences are random, so it measures speed, never answers (every result made with one says so).

The shapes are those of each model's public config.json (in `MODELS`); the types follow
llama.cpp's own choice for the quantisation (`tensor_type`: Q4_K_M keeps the output matrix and
some value and down projections at Q6_K); the data is quantised by llama.cpp's own quantiser
(`ggml_quantize_chunk`, from the xllamacpp wheel) from random rows, a few rows a tensor repeated
to its size, so that memory stays within one tensor (at most ~0.45 GB, the 8B model's output).
The tokenizer and chat template are the bundled SmolLM2's (ChatML, English BPE of 49152 tokens),
padded with unused tokens to the model's vocabulary size, so that the embedding and output
matrices, and the cost of every token, are the real model's.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TWINS = ROOT / "models" / "twins"
SAMPLE_ROWS = 32  # random rows quantised per tensor, repeated to its size


@dataclass(frozen=True)
class Config:
    """The parts of a model's config.json that set llama.cpp's work per token."""

    repo: str  # where the real model's config.json is published
    arch: str  # llama.cpp's architecture: llama, or qwen2 (biases on q, k, v)
    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    context: int
    rope_base: float
    eps: float
    tied: bool  # the output matrix is the embedding's
    quant: str  # the quantisation users run

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


MODELS = {
    "smollm2-135m": Config(
        "HuggingFaceTB/SmolLM2-135M-Instruct", "llama", 576, 1536, 30, 9, 3, 49152, 8192,
        100000.0, 1e-5, True, "Q8_0",
    ),
    "smollm2-1.7b": Config(
        "HuggingFaceTB/SmolLM2-1.7B-Instruct", "llama", 2048, 8192, 24, 32, 32, 49152, 8192,
        130000.0, 1e-5, True, "Q4_K_M",
    ),
    "qwen2.5-1.5b": Config(
        "Qwen/Qwen2.5-1.5B-Instruct", "qwen2", 1536, 8960, 28, 12, 2, 151936, 32768,
        1000000.0, 1e-6, True, "Q4_K_M",
    ),
    "llama-3.2-3b": Config(
        "meta-llama/Llama-3.2-3B-Instruct", "llama", 3072, 8192, 28, 24, 8, 128256, 131072,
        500000.0, 1e-5, True, "Q4_K_M",
    ),
    "llama-3.1-8b": Config(
        "meta-llama/Llama-3.1-8B-Instruct", "llama", 4096, 14336, 32, 32, 8, 128256, 131072,
        500000.0, 1e-5, False, "Q4_K_M",
    ),
}  # fmt: skip

QUANTS = {"Q4_K_M": 15, "Q4_0": 2, "Q8_0": 7}  # llama.cpp's file types (general.file_type)

# What a twin writes is random; its words need not be. The bot speaks an answer's first piece
# once it has a few whole words (bot/text.py), so a twin writing sub-word noise (two to three
# tokens a "word") would take twice the tokens a real model does to get there. Its output
# matrix's rows for common English words (with their leading space) are scaled up, so that it
# writes about a token a word (English with this tokenizer: 1.2-1.3); which word wins is still
# random, the cost of every token unchanged. It writes no punctuation: its first piece ends at
# the bot's word limit (6), and its answers at the answer guard's (60 words).
_COMMON = """the a and to of is it you in that was for on are with as they be at one have this
from or had by not but some what there we can out other were all your when up use how said an
each she which do their if will way about many then them would so these her see him has look
more day could go come did my sound no most people over know water than call first who may
down side been now find any new work part take get place made live where after back little
only round man year came show every good me give our under name very through just great say
help low line before turn cause same mean differ move right boy old too does tell set three
want air well also play small end put home read hand large spell add even land here must big
high such follow act why ask men change went light kind off need house picture try us again
animal point mother world near build self earth father head stand own page should country
found answer school grow study still learn plant cover food sun four thought let keep eye
never last door between city tree cross since hard start might story saw far sea draw left
late run while press close night real life few stop"""
WORDS = _COMMON.split()
WORD_SCALE = 3.0  # measured: 1.00-1.06 tokens a word, no sub-word noise (docs/llm.md)


def _more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's `use_more_bits`: the layers Q4_K_M gives Q6_K value and down projections."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def tensor_type(name: str, quant: str, layers: int, tied: bool) -> str:
    """The type llama.cpp's quantiser gives tensor `name` for `quant`: norms and biases stay
    F32; the output matrix (the embedding, where it is tied) is Q6_K unless the rest is Q8_0."""
    if not name.endswith(".weight") or "_norm" in name:
        return "F32"
    base = {"Q4_K_M": "Q4_K"}.get(quant, quant)
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        return base if quant == "Q8_0" else "Q6_K"
    if quant == "Q4_K_M" and name.endswith(("attn_v.weight", "ffn_down.weight")):
        return "Q6_K" if _more_bits(int(name.split(".")[1]), layers) else base
    return base


def tensors(config: Config) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor's name and shape in llama.cpp's order (row length first)."""
    h, kv = config.hidden, config.kv_heads * config.head_dim
    out: list[tuple[str, tuple[int, ...]]] = [("token_embd.weight", (h, config.vocab))]
    for i in range(config.layers):
        block = [
            ("attn_norm.weight", (h,)),
            ("attn_q.weight", (h, h)),
            ("attn_k.weight", (h, kv)),
            ("attn_v.weight", (h, kv)),
            ("attn_output.weight", (h, h)),
            ("ffn_norm.weight", (h,)),
            ("ffn_gate.weight", (h, config.ffn)),
            ("ffn_up.weight", (h, config.ffn)),
            ("ffn_down.weight", (config.ffn, h)),
        ]
        if config.arch == "qwen2":
            block += [("attn_q.bias", (h,)), ("attn_k.bias", (kv,)), ("attn_v.bias", (kv,))]
        out += [(f"blk.{i}.{name}", shape) for name, shape in block]
    out.append(("output_norm.weight", (h,)))
    # A tied model's output matrix is its embedding; the twin writes it out separately, of the
    # same shape and type, so that `english_words` shapes what it writes without echoing each
    # token it reads. The same work per token; the file is larger by the one matrix.
    out.append(("output.weight", (h, config.vocab)))
    return out


def parameters(config: Config) -> int:
    """The real model's parameter count (a tied output matrix counted once)."""
    twin = sum(int(np.prod(shape)) for _, shape in tensors(config))
    return twin - config.hidden * config.vocab if config.tied else twin


def _quantiser():
    """ggml's `ggml_quantize_chunk`, from the llama.cpp library inside the xllamacpp wheel."""
    import xllamacpp

    library = ctypes.CDLL(str(next(Path(xllamacpp.__file__).parent.glob("xllamacpp*.so"))))
    quantize = library.ggml_quantize_chunk
    quantize.restype = ctypes.c_size_t
    quantize.argtypes = [
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
        ctypes.c_int64, ctypes.c_void_p,
    ]  # fmt: skip
    return quantize


def _quantised(floats: np.ndarray, qtype, quantize) -> np.ndarray:
    """`floats` (rows by row length) quantised by ggml, a row of bytes per row."""
    import gguf

    block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    rows, row = floats.shape
    out = np.empty((rows, row // block * block_bytes), dtype=np.uint8)
    floats = np.ascontiguousarray(floats, dtype=np.float32)
    written = quantize(int(qtype), floats.ctypes.data, out.ctypes.data, 0, rows, row, None)
    if written != out.nbytes:
        raise RuntimeError(f"ggml wrote {written} bytes for {out.nbytes}")
    return out


def _data(
    shape: tuple[int, ...],
    kind: str,
    rng: np.random.Generator,
    quantize,
    favoured: dict[int, float] | None = None,
) -> np.ndarray:
    """Random weights of `shape` as `kind`: SAMPLE_ROWS rows quantised, repeated to size; the
    rows in `favoured` (the output matrix's, by token) scaled as it says."""
    import gguf

    if kind == "F32":
        return np.ones(shape[::-1], dtype=np.float32)  # norms: 1, as trained models are near
    row, rows = shape[0], int(np.prod(shape[1:]))
    qtype = gguf.GGMLQuantizationType[kind]
    sample = rng.standard_normal((min(rows, SAMPLE_ROWS), row)) * 0.02
    quantised = _quantised(sample, qtype, quantize)
    out = np.resize(quantised, (rows, quantised.shape[1]))
    if favoured:
        ids = np.fromiter(favoured, dtype=np.int64)
        scales = np.fromiter(favoured.values(), dtype=np.float64)[:, None]
        out[ids] = _quantised(rng.standard_normal((len(ids), row)) * 0.02 * scales, qtype, quantize)
    return out


def build(model: str, quant: str | None = None, out: Path = TWINS) -> Path:
    """Write the twin of `model` (a key of MODELS) as `quant`; returns its path."""
    import gguf

    from scripts.llm_server import TWIN_KEY, TWIN_PARAMETERS_KEY, bundled_gguf

    config = MODELS[model]
    quant = quant or config.quant
    path = out / f"{model}-twin.{quant}.gguf"
    out.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    source = gguf.GGUFReader(bundled_gguf())
    writer = gguf.GGUFWriter(partial, config.arch)
    arch = config.arch
    writer.add_name(f"{config.repo.split('/')[-1]} timing twin (random weights)")
    writer.add_string(TWIN_KEY, config.repo)
    writer.add_uint64(TWIN_PARAMETERS_KEY, parameters(config))
    writer.add_file_type(QUANTS[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_uint32(f"{arch}.block_count", config.layers)
    writer.add_uint32(f"{arch}.context_length", config.context)
    writer.add_uint32(f"{arch}.embedding_length", config.hidden)
    writer.add_uint32(f"{arch}.feed_forward_length", config.ffn)
    writer.add_uint32(f"{arch}.attention.head_count", config.heads)
    writer.add_uint32(f"{arch}.attention.head_count_kv", config.kv_heads)
    writer.add_float32(f"{arch}.rope.freq_base", config.rope_base)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", config.eps)
    writer.add_uint32(f"{arch}.vocab_size", config.vocab)
    writer.add_uint32(f"{arch}.rope.dimension_count", config.head_dim)
    _copy_tokenizer(source, writer, config.vocab)
    plan = [(name, shape, tensor_type(name, quant, config.layers, config.tied))
            for name, shape in tensors(config)]  # fmt: skip
    for name, shape, kind in plan:
        qtype = gguf.GGMLQuantizationType[kind]
        block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = int(np.prod(shape)) // block * block_bytes
        writer.add_tensor_info(name, shape[::-1], np.dtype(np.float32), nbytes, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    quantize, rng = _quantiser(), np.random.default_rng(0)
    output = "output.weight"
    tokens = source.fields[gguf.Keys.Tokenizer.LIST].contents()
    favoured = english_words(tokens)
    for name, shape, kind in plan:
        writer.write_tensor_data(
            _data(shape, kind, rng, quantize, favoured if name == output else None)
        )
    writer.close()
    partial.replace(path)
    return path


def _copy_tokenizer(source, writer, vocab: int) -> None:
    """The bundled model's tokenizer and chat template, its vocabulary padded to `vocab`."""
    import gguf

    for field in source.fields.values():
        if not field.name.startswith("tokenizer."):
            continue
        value = field.contents()
        if field.name == gguf.Keys.Tokenizer.LIST:
            value = value + [f"<|twin_unused_{i}|>" for i in range(len(value), vocab)]
        elif field.name == gguf.Keys.Tokenizer.TOKEN_TYPE:
            value = value + [gguf.TokenType.UNUSED] * (vocab - len(value))
        kind = field.types[0]
        sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, kind, sub_type=sub_type)


def english_words(tokens: list[str]) -> dict[int, float]:
    """The output rows to scale, by token id: WORDS with their leading space (BPE's "Ġ")."""
    index = {token: i for i, token in enumerate(tokens)}
    return {index[f"Ġ{word}"]: WORD_SCALE for word in WORDS if f"Ġ{word}" in index}


def twin_of(path: Path) -> str | None:
    """The real model a GGUF is a timing twin of (its repository), or None for real weights."""
    import gguf

    from scripts.llm_server import TWIN_KEY

    field = gguf.GGUFReader(path).fields.get(TWIN_KEY)
    return None if field is None else str(field.contents())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--quant", choices=sorted(QUANTS), help="default: the one users run")
    parser.add_argument("--out", type=Path, default=TWINS)
    args = parser.parse_args()
    config = MODELS[args.model]
    print(f"{args.model}: {parameters(config) / 1e9:.2f} B parameters, from {config.repo}")
    path = build(args.model, args.quant, args.out)
    print(f"{path} ({path.stat().st_size / 1e9:.2f} GB): random weights, for timing only")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
