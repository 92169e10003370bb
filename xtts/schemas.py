"""Request bodies of the XTTS contract and every check made before audio starts to flow.

A streamed response cannot change its status once audio has started, so everything that can
be wrong with a request is found here, up front, and answered with a 4xx and a JSON error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, StrictFloat, field_validator

from xtts.text import has_words, speakable
from xtts.voices import EMBEDDING_SIZE, LATENT_ROWS, LATENT_WIDTH, Latents, Voice

if TYPE_CHECKING:
    from xtts.engines.base import TTSEngine

# XTTS v2's language codes, in its config's order.
XTTS_LANGUAGES = (
    "en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn", "hu", "ko",
    "ja", "hi",
)  # fmt: skip

# stream_chunk_size counts XTTS GPT tokens per audio chunk; beyond this nothing streams.
MAX_STREAM_CHUNK_SIZE = 1000


class ApiError(Exception):
    """An error answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SpeechBody(BaseModel):
    """POST /tts: what to say, in which language, with which speaker's latents."""

    # Unknown fields are ignored: clients of the original server send extras (e.g. "decoder").
    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")

    text: str
    language: str
    # Strict: numbers only; "0.5" or true in a latent is a malformed request, not a number.
    speaker_embedding: list[StrictFloat]
    gpt_cond_latent: list[list[StrictFloat]]

    @field_validator("text")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty or only whitespace")
        if not has_words(value):
            raise ValueError("has nothing to speak: no letter or digit, only symbols or emoji")
        return speakable(value)

    @field_validator("language")
    @classmethod
    def _language_code(cls, value: str) -> str:
        code = value.strip().lower()
        if not code:
            raise ValueError(f"must be a language code, one of {', '.join(XTTS_LANGUAGES)}")
        return code

    @field_validator("speaker_embedding")
    @classmethod
    def _embedding_shape(cls, value: list[float]) -> list[float]:
        if len(value) != EMBEDDING_SIZE:
            raise ValueError(f"must be a list of {EMBEDDING_SIZE} numbers (got {len(value)})")
        return value

    @field_validator("gpt_cond_latent")
    @classmethod
    def _latent_shape(cls, value: list[list[float]]) -> list[list[float]]:
        expected = f"must be {LATENT_ROWS} lists of {LATENT_WIDTH} numbers"
        if len(value) != LATENT_ROWS:
            raise ValueError(f"{expected} (got {len(value)} lists)")
        for index, row in enumerate(value):
            if len(row) != LATENT_WIDTH:
                raise ValueError(f"{expected} (list {index} has {len(row)})")
        return value


class StreamBody(SpeechBody):
    """POST /tts_stream: /tts's fields plus the streaming options."""

    # The original server's default; Pipecat sends false.
    add_wav_header: bool = True
    # The original server declared a string ("20"); clients send either form.
    stream_chunk_size: int = 20

    @field_validator("stream_chunk_size", mode="before")
    @classmethod
    def _chunk_size(cls, value: Any) -> int:
        allowed = f"must be a whole number from 1 to {MAX_STREAM_CHUNK_SIZE}"
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{allowed} (got {value!r})")
        if not 1 <= value <= MAX_STREAM_CHUNK_SIZE:
            raise ValueError(f"{allowed} (got {value})")
        return value


@dataclass(frozen=True)
class SpeechJob:
    """A checked request, ready for the engine."""

    text: str
    language: str
    voice: Voice
    stream_chunk_size: int = 20


def check_speech(body: SpeechBody, engine: TTSEngine, max_text_chars: int) -> SpeechJob:
    """The engine-dependent checks: text length, language, speaker. Raises ApiError."""
    if len(body.text) > max_text_chars:
        raise ApiError(
            413,
            f"text: {len(body.text)} characters is over this server's limit of "
            f"{max_text_chars} (TTS_MAX_TEXT_CHARS); send it in parts",
        )
    language = resolve_language(body.language, engine)
    voice = engine.resolve_voice(Latents.from_lists(body.speaker_embedding, body.gpt_cond_latent))
    if voice is None:
        known = ", ".join(engine.voices()) or "none"
        raise ApiError(
            400,
            "speaker_embedding: unknown speaker; the latents match none of this server's "
            f"voices ({known}); take them from GET /studio_speakers",
        )
    chunk_size = body.stream_chunk_size if isinstance(body, StreamBody) else 20
    return SpeechJob(body.text, language, voice, chunk_size)


def resolve_language(code: str, engine: TTSEngine) -> str:
    """The engine's code for `code`, tolerating a region suffix ("en-us" -> "en")."""
    spoken = list(engine.languages)
    for candidate in (code, code.split("-")[0]):
        if candidate in spoken:
            return candidate
    if code in XTTS_LANGUAGES:
        raise ApiError(
            400,
            f"language: the {engine.name} engine does not speak '{code}'; "
            f"it speaks {', '.join(spoken)}",
        )
    raise ApiError(
        400,
        f"language: unknown language code '{code}'; XTTS codes are {', '.join(XTTS_LANGUAGES)}",
    )


def describe_validation(errors: list[dict[str, Any]], limit: int = 3) -> str:
    """Pydantic errors as one sentence naming each field, e.g. `text: field required`."""
    parts = [f"{_field(error['loc'])}: {_message(error)}" for error in errors[:limit]]
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts) or "invalid request"


def _field(loc: tuple | list) -> str:
    path = [part for part in loc if part != "body"]
    if not path or isinstance(path[0], int):
        return "body"
    name = str(path[0])
    return name + "".join(f"[{part}]" for part in path[1:])


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type")
    if kind == "missing":
        return "required" if _field(error["loc"]) != "body" else "must be a JSON object"
    if kind == "json_invalid":
        return f"not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
    if kind == "model_attributes_type":
        return "must be a JSON object"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]
