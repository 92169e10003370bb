"""Which LLM this machine can hold a conversation with, from its cores and memory.

    python3 -m bot.llm_choice            # the choice and why, in words
    python3 -m bot.llm_choice --ollama   # its Ollama tag (what `make up-cpu` pulls)

`LLM_GGUF=auto` (`make run`) and `LLM_MODEL=auto` (`make up-cpu`, and the bot) take this choice;
any other value is used as given, so the seed's model is one setting away (`LLM_MODEL=llama3.1:8b`,
or `LLM_GGUF=` a file of it). Only the standard library: the Makefile runs it with the system's
Python before anything is installed.

The rule (docs/llm.md has the figures behind it): llama.cpp writes on one core less than the
machine has, and on the development machine (2 vCPU Xeon @ 2.80 GHz, the bot speaking and
listening beside it) each of those cores wrote about 12 billion parameters' worth of tokens a
second at Q4_K_M (the 1.7B twin 7.2 tokens/s, the 3B twin 4.3, the 8B twin 1.5). A model keeps a
conversation going when it writes at least twice as fast as the voice speaks (about four tokens
a second): its first words are ready within a second and the rest stays ahead of the voice. The
largest model of the ladder that does, and that fits in memory with the rest of the kit, is
chosen. Where none does (two cores), the smallest model worth talking to is chosen and the
reason says how slow it will be; where memory is short even for that, the bundled SmolLM2-135M.
Beyond two cores the speeds are extrapolated, not measured: memory bandwidth caps them sooner on
some machines (`make bench LLM=…` measures yours).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

# Billions of parameters written per second, per generation thread, at Q4_K_M (measured, above).
PARAMETERS_PER_THREAD = 12.0
# Twice the voice's pace: about three words a second, 1.3 tokens a word.
ENOUGH_TOKENS_PER_SEC = 8.0
# The bot, Whisper and the TTS engine beside the model.
KIT_GIB = 2.0
SLOTS, CONTEXT = 4, 4096  # the embedded server's conversations and context per conversation


@dataclass(frozen=True)
class Model:
    name: str
    parameters_b: float
    file_gib: float  # Q4_K_M
    kv_kib_per_token: int  # 16-bit keys and values, all layers
    repo: str  # a GGUF repository on the Hugging Face hub
    file: str
    ollama: str  # the same model in Ollama's library (Q4_K_M)

    def tokens_per_sec(self, cores: int) -> float:
        return PARAMETERS_PER_THREAD * max(1, cores - 1) / self.parameters_b

    def memory_gib(self) -> float:
        return self.file_gib + self.kv_kib_per_token * SLOTS * CONTEXT / 2**20 + KIT_GIB


BUNDLED = Model("SmolLM2-135M-Instruct", 0.135, 0.14, 23, "", "bundled", "smollm2:135m")
# Smallest first. Qwen2.5-1.5B answers to the point and keeps a persona where the 0.5B and 135M
# models ramble (Apache-2.0); Llama 3.2 3B and 3.1 8B (Llama licences) are the seed's family.
LADDER = (
    Model(
        "Qwen2.5-1.5B-Instruct",
        1.54,
        0.92,
        28,
        "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
        "qwen2.5-1.5b-instruct-q4_k_m.gguf",
        "qwen2.5:1.5b",
    ),
    Model(
        "Llama-3.2-3B-Instruct",
        3.21,
        1.88,
        112,
        "bartowski/Llama-3.2-3B-Instruct-GGUF",
        "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        "llama3.2:3b",
    ),
    Model(
        "Llama-3.1-8B-Instruct",
        8.03,
        4.58,
        128,
        "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
        "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
        "llama3.1:8b",
    ),
)


@dataclass(frozen=True)
class Choice:
    model: Model
    why: str


def available_gib() -> float:
    """Memory the kit may use: MemAvailable where Linux says it, else all of it."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 8.0


def choose(cores: int | None = None, memory_gib: float | None = None) -> Choice:
    cores = cores or os.cpu_count() or 2
    memory = available_gib() if memory_gib is None else memory_gib
    machine = f"{cores} cores, {memory:.0f} GiB free"
    fits = [m for m in LADDER if m.memory_gib() <= memory]
    if not fits:
        need = LADDER[0].memory_gib()
        return Choice(BUNDLED, f"{machine}: {LADDER[0].name} needs {need:.1f} GiB with the kit")
    quick = [m for m in fits if m.tokens_per_sec(cores) >= ENOUGH_TOKENS_PER_SEC]
    if quick:
        model = quick[-1]
        return Choice(
            model,
            f"{machine}: writes about {model.tokens_per_sec(cores):.1f} tokens/s here, "
            "twice the voice's pace or more; the largest model that does",
        )
    model = fits[0]
    return Choice(
        model,
        f"{machine}: no model worth talking to writes twice the voice's pace here; this one "
        f"about {model.tokens_per_sec(cores):.1f} tokens/s, so answers start late (1.9 s on "
        "a 2-core Xeon; LLM_GGUF=bundled: SmolLM2-135M, 0.6 s there, and often wrong)",
    )


def main(argv: list[str]) -> int:
    choice = choose()
    if argv[1:] == ["--ollama"]:
        print(choice.model.ollama)
    elif argv[1:]:
        print("usage: python3 -m bot.llm_choice [--ollama]", file=sys.stderr)
        return 2
    else:
        print(f"{choice.model.name} ({choice.why})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
