"""Latents for named voices, and mapping latents back to the voice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xtts.voices import (
    EMBEDDING_SIZE,
    LATENT_ROWS,
    LATENT_WIDTH,
    Latents,
    VoiceBook,
    named_latents,
)


def test_named_latents_have_the_xtts_shapes_and_are_fixed_per_name():
    heart = named_latents("heart")
    assert heart.speaker_embedding.shape == (EMBEDDING_SIZE,)
    assert heart.gpt_cond_latent.shape == (LATENT_ROWS, LATENT_WIDTH)
    assert np.array_equal(heart.speaker_embedding, named_latents("heart").speaker_embedding)
    assert abs(np.linalg.norm(heart.speaker_embedding) - 1.0) < 1e-2
    # Pinned: clients may store latents, so they must not drift between releases.
    assert heart.speaker_embedding[:3].tolist() == pytest.approx(
        [-0.0249, -0.0453, -0.0565], abs=1e-6
    )


def test_latents_survive_a_json_round_trip_and_still_match():
    book = VoiceBook(["heart", "joe"])
    sent = json.loads(json.dumps(book.latents()["joe"].to_json()))
    voice = book.match(Latents.from_lists(sent["speaker_embedding"], sent["gpt_cond_latent"]))
    assert voice is not None and voice.name == "joe"


def test_latents_survive_float16_precision():
    joe = named_latents("joe")
    halved = Latents(
        joe.speaker_embedding.astype(np.float16).astype(np.float32), joe.gpt_cond_latent
    )
    assert VoiceBook(["joe"]).match(halved) is not None


def test_latents_of_another_voice_match_nothing():
    book = VoiceBook(["heart"])
    assert book.match(named_latents("joe")) is None
    noise = np.random.default_rng(0).normal(0, 0.05, EMBEDDING_SIZE)
    assert book.match(Latents.from_lists(noise, np.zeros((32, 1024)))) is None


def test_to_json_rounds_floats_to_keep_the_payload_small():
    encoded = json.dumps(named_latents("heart").to_json())
    assert len(encoded) < 200_000
    assert all(
        len(str(value)) <= 7 for value in named_latents("heart").to_json()["speaker_embedding"]
    )
