"""Request validation: every bad input is refused, before any audio, with a plain message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from xtts.schemas import (
    ApiError,
    SpeechBody,
    StreamBody,
    check_speech,
    describe_validation,
)
from xtts.voices import VoiceBook, named_latents


class _EnglishEngine:
    """Just enough of an engine for the engine-dependent checks."""

    name = "fake"
    languages = ["en"]  # noqa: RUF012

    def __init__(self) -> None:
        self._book = VoiceBook(["heart"])

    def voices(self):
        return self._book.latents()

    def resolve_voice(self, latents):
        return self._book.match(latents)


def _body(**changes: Any) -> dict[str, Any]:
    body = {"text": "Hello there.", "language": "en", **named_latents("heart").to_json()}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


def _error(model: type, **changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(_body(**changes))
    return describe_validation(caught.value.errors())


def test_a_good_stream_request_gets_the_original_servers_defaults():
    body = StreamBody.model_validate(_body())
    assert body.add_wav_header is True
    assert body.stream_chunk_size == 20


@pytest.mark.parametrize("size", [20, "20", " 7 ", 20.0])
def test_stream_chunk_size_takes_a_number_or_a_numeric_string(size):
    assert StreamBody.model_validate(_body(stream_chunk_size=size)).stream_chunk_size in (7, 20)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"text": ""}, "text: must not be empty or only whitespace"),
        ({"text": " \n\t "}, "text: must not be empty or only whitespace"),
        ({"text": ...}, "text: required"),
        ({"text": 5}, "text: input should be a valid string"),
        ({"language": " "}, "language: must be a language code"),
        (
            {"speaker_embedding": [0.1] * 5},
            "speaker_embedding: must be a list of 512 numbers (got 5)",
        ),
        (
            {"speaker_embedding": ["0.1"] * 512},
            "speaker_embedding[0]: input should be a valid number",
        ),
        (
            {"speaker_embedding": [True] * 512},
            "speaker_embedding[0]: input should be a valid number",
        ),
        (
            {"speaker_embedding": [float("nan")] * 512},
            "speaker_embedding[0]: input should be a finite",
        ),
        ({"speaker_embedding": "heart"}, "speaker_embedding: input should be a valid list"),
        (
            {"gpt_cond_latent": [[0.0] * 1024] * 31},
            "gpt_cond_latent: must be 32 lists of 1024 numbers (got 31 lists)",
        ),
        ({"gpt_cond_latent": [[0.0] * 1024] * 31 + [[0.0] * 3]}, "(list 31 has 3)"),
        (
            {"gpt_cond_latent": [[0.0] * 1024] * 31 + [[None] * 1024]},
            "gpt_cond_latent[31][0]: input should be a valid number",
        ),
        (
            {"stream_chunk_size": "abc"},
            "stream_chunk_size: must be a whole number from 1 to 1000 (got 'abc')",
        ),
        (
            {"stream_chunk_size": 0},
            "stream_chunk_size: must be a whole number from 1 to 1000 (got 0)",
        ),
        ({"stream_chunk_size": -5}, "stream_chunk_size: must be a whole number"),
        ({"stream_chunk_size": 2.5}, "stream_chunk_size: must be a whole number"),
        ({"stream_chunk_size": True}, "stream_chunk_size: must be a whole number"),
        ({"stream_chunk_size": None}, "stream_chunk_size: must be a whole number"),
        ({"add_wav_header": "sometimes"}, "add_wav_header: input should be a valid boolean"),
    ],
)
def test_malformed_requests_are_refused_naming_the_field(changes, expected):
    assert expected in _error(StreamBody, **changes)


def test_a_flood_of_errors_is_summarized():
    message = _error(StreamBody, gpt_cond_latent=[["x"] * 1024] * 32)
    assert message.startswith("gpt_cond_latent[0][0]: input should be a valid number")
    assert message.endswith("and 32765 more")


def test_tts_body_ignores_streaming_fields_and_unknown_extras():
    body = SpeechBody.model_validate(_body(stream_chunk_size="abc", decoder="ne_hifigan"))
    assert body.text == "Hello there."


def test_check_speech_accepts_a_known_voice_and_language():
    job = check_speech(
        StreamBody.model_validate(_body(stream_chunk_size="9")), _EnglishEngine(), 100
    )
    assert (job.voice.name, job.language, job.stream_chunk_size) == ("heart", "en", 9)


def test_check_speech_takes_a_region_suffixed_code_as_its_base_language():
    assert (
        check_speech(
            SpeechBody.model_validate(_body(language="EN-us")), _EnglishEngine(), 100
        ).language
        == "en"
    )


@pytest.mark.parametrize(
    ("changes", "status", "expected"),
    [
        ({"text": "x" * 101}, 413, "text: 101 characters is over this server's limit of 100"),
        ({"language": "xx"}, 400, "language: unknown language code 'xx'; XTTS codes are en, es"),
        ({"language": "de"}, 400, "language: the fake engine does not speak 'de'; it speaks en"),
        ({"language": "zh-cn"}, 400, "does not speak 'zh-cn'"),
        (
            {"speaker_embedding": named_latents("joe").to_json()["speaker_embedding"]},
            400,
            "speaker_embedding: unknown speaker",
        ),
        ({"speaker_embedding": [0.0] * 512}, 400, "match none of this server's voices (heart)"),
    ],
)
def test_check_speech_refuses_what_the_engine_cannot_do(changes, status, expected):
    with pytest.raises(ApiError) as caught:
        check_speech(StreamBody.model_validate(_body(**changes)), _EnglishEngine(), 100)
    assert caught.value.status == status
    assert expected in caught.value.message


def test_text_exactly_at_the_limit_is_accepted():
    assert check_speech(SpeechBody.model_validate(_body(text="y" * 100)), _EnglishEngine(), 100)


def test_describe_validation_names_the_body_when_it_is_not_an_object():
    errors = [{"type": "model_attributes_type", "loc": ("body",), "msg": "Input should be..."}]
    assert describe_validation(errors) == "body: must be a JSON object"
    errors = [
        {
            "type": "json_invalid",
            "loc": ("body", 1),
            "msg": "JSON decode error",
            "ctx": {"error": "Expecting value"},
        }
    ]
    assert describe_validation(errors) == "body: not valid JSON (Expecting value)"
