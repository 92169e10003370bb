"""The TTS server as a real process, driven the way its clients drive it.

For each offline engine, `python -m xtts` runs on a free port; Pipecat's unmodified
`XTTSService` and the bot's own `KitTTSService` speak through it, and the raw HTTP contract is checked request by request.
Whisper judges that the audio says what was asked.
"""

from __future__ import annotations

import io
import os
import re
import time
import wave
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.pipeline.worker import PipelineParams
from pipecat.services.xtts.tts import XTTSService
from pipecat.tests.utils import run_test

from bot.tts import KitTTSService
from tests.support import ARTIFACTS, free_port, metric, rms, server_process, transcribe
from xtts.voices import named_latents

pytestmark = pytest.mark.contract

VOICES = {"hibari": "heart", "piper": "joe"}
RATE = 24000
PANGRAM = "The quick brown fox jumps over the lazy dog."
SENTENCES = (
    "The museum opens at nine in the morning. Tickets are sold at the front desk. "
    "Children under twelve enter for free. The garden closes an hour before sunset."
)
# Over the server's 250-character sentence size, so it is cut at its commas.
LONG_SENTENCE = (
    "On the last day of the festival, after the parade had wound its way through the old "
    "town, past the harbour, the bakery and the little stone bridge, and after the lanterns "
    "had been lit along the river and the crowd had gathered in the square, the orchestra "
    "played a wonderful symphony."
)


@dataclass(frozen=True)
class Server:
    engine: str
    voice: str
    url: str
    log: Path


@pytest.fixture(scope="module", params=sorted(VOICES))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    engine = request.param
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # One log per process under pytest-xdist: the queue test reads it.
    name = f"xtts-contract-{engine}{os.environ.get('PYTEST_XDIST_WORKER', '')}"
    # Every setting is explicit so a developer's .env cannot change the server under test.
    env = {
        "TTS_ENGINE": engine,
        "TTS_VOICE": VOICES[engine],
        "TTS_HOST": "127.0.0.1",
        "TTS_PORT": str(port),
        "TTS_DEVICE": "cpu",
        "TTS_THREADS": "1",
        "TTS_MAX_TEXT_CHARS": "2000",
        "TTS_LOG_LEVEL": "info",
    }
    with server_process(["-m", "xtts"], env=env, ready_url=f"{url}/ready", name=name):
        yield Server(engine, VOICES[engine], url, ARTIFACTS / f"{name}.log")


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def latents(server: Server, http: httpx.Client) -> dict[str, Any]:
    return http.get("/studio_speakers").json()[server.voice]


def speech(latents: dict[str, Any], text: str, **extra: Any) -> dict[str, Any]:
    return {"text": text, "language": "en", **latents, **extra}


def seconds(pcm: bytes) -> float:
    return len(pcm) / 2 / RATE


# --- The clients: Pipecat's stock one and the bot's own ---


def client(kind: str, server: Server, session: aiohttp.ClientSession):
    if kind == "stock":
        return XTTSService(
            base_url=server.url,
            aiohttp_session=session,
            settings=XTTSService.Settings(voice=server.voice),
        )
    return KitTTSService(base_url=server.url, voice=server.voice, language="en", session=session)


@pytest.mark.parametrize("kind", ["stock", "kit"])
async def test_pipecat_tts_clients_speak_through_the_server(server: Server, kind: str):
    async with aiohttp.ClientSession() as session:
        frames, _ = await run_test(
            client(kind, server, session),
            frames_to_send=[TTSSpeakFrame(PANGRAM)],
            pipeline_params=PipelineParams(audio_out_sample_rate=RATE),
        )
    assert not [frame for frame in frames if isinstance(frame, ErrorFrame)]
    audio = [frame for frame in frames if isinstance(frame, TTSAudioRawFrame)]
    assert audio, "no audio came back"
    assert {(frame.sample_rate, frame.num_channels) for frame in audio} == {(RATE, 1)}
    pcm = b"".join(frame.audio for frame in audio)
    assert 1.0 < seconds(pcm) < 10.0
    heard = transcribe(pcm, RATE).split()
    assert {"quick", "brown", "fox"} <= set(heard), heard


# --- Discovery and health ---


def test_health_and_ready(server: Server, http: httpx.Client):
    assert http.get("/health").json() == {"status": "ok"}
    ready = http.get("/ready").json()
    assert (ready["status"], ready["engine"], ready["voices"]) == (
        "ready",
        server.engine,
        [server.voice],
    )


def test_studio_speakers_carry_xtts_shaped_latents(server: Server, http: httpx.Client):
    speakers = http.get("/studio_speakers").json()
    assert list(speakers) == [server.voice]
    speaker = speakers[server.voice]
    assert len(speaker["speaker_embedding"]) == 512
    assert len(speaker["gpt_cond_latent"]) == 32
    assert {len(row) for row in speaker["gpt_cond_latent"]} == {1024}
    assert all(isinstance(value, float) for value in speaker["speaker_embedding"])


def test_languages(http: httpx.Client):
    assert http.get("/languages").json() == ["en"]


# --- Synthesis ---


@pytest.mark.parametrize("chunk_size", [20, "20"], ids=["int", "string"])
def test_tts_stream_returns_raw_24khz_pcm(http: httpx.Client, latents, chunk_size):
    body = speech(latents, "Good morning.", add_wav_header=False, stream_chunk_size=chunk_size)
    with http.stream("POST", "/tts_stream", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/raw"
        pcm = response.read()
    assert pcm[:4] != b"RIFF"
    assert len(pcm) % 2 == 0
    assert 0.3 < seconds(pcm) < 5.0
    assert rms(pcm) > 0.01


@pytest.mark.parametrize("flag", [True, None], ids=["explicit", "default"])
def test_wav_header_comes_first_when_asked_for_and_by_default(http: httpx.Client, latents, flag):
    body = speech(latents, "Good morning.")
    if flag is not None:
        body["add_wav_header"] = flag
    response = http.post("/tts_stream", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.content[:4] == b"RIFF"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        pcm = wav.readframes(10 * RATE)
    assert len(pcm) == len(response.content) - 44
    assert rms(pcm) > 0.01


def test_multi_sentence_text_streams_in_pieces(http: httpx.Client, latents):
    # That audio flows before the last sentence exists is proven deterministically in
    # tests/unit/test_xtts_app.py; here the real engines deliver it in pieces.
    body = speech(latents, SENTENCES, add_wav_header=False)
    with http.stream("POST", "/tts_stream", json=body) as response:
        assert "content-length" not in response.headers
        sizes = [len(chunk) for chunk in response.iter_raw()]
    assert len(sizes) > 1
    assert sizes[0] < sum(sizes) / 2


def test_tts_returns_one_complete_wav(http: httpx.Client, latents):
    response = http.post("/tts", json=speech(latents, "Good morning. Have a nice day."))
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2)
        pcm = wav.readframes(wav.getnframes())
    assert len(pcm) == wav.getnframes() * 2 == len(response.content) - 44
    assert seconds(pcm) > 1.0 and rms(pcm) > 0.01


def test_long_text_under_the_limit_is_split_and_fully_synthesized(http: httpx.Client, latents):
    text = f"{SENTENCES} {LONG_SENTENCE}"
    assert len(LONG_SENTENCE) > 250 and len(text) < 2000
    response = http.post("/tts_stream", json=speech(latents, text, add_wav_header=False))
    assert response.status_code == 200
    # Nothing was dropped: as long as the two parts synthesized one by one (engines vary a
    # little between runs, so within 15%).
    parts = [
        http.post("/tts_stream", json=speech(latents, part, add_wav_header=False)).content
        for part in (SENTENCES, LONG_SENTENCE)
    ]
    assert len(response.content) == pytest.approx(sum(map(len, parts)), rel=0.15)
    # And it is intelligible from start to end (Whisper may miss a word on a long passage).
    heard = set(transcribe(response.content, RATE).split())
    markers = {"museum", "children", "orchestra", "symphony"}
    assert len(markers & heard) >= 3, heard


def test_clone_speaker_is_refused_by_engines_that_cannot_clone(server: Server, http: httpx.Client):
    response = http.post("/clone_speaker", files={"wav_file": ("voice.wav", b"RIFF....WAVE")})
    assert response.status_code == 501
    assert f"the {server.engine} engine cannot clone voices" in response.json()["error"]


# --- Refusals: each before any audio, with a JSON error naming the problem ---


@pytest.mark.parametrize(
    ("changes", "status", "expected"),
    [
        ({"text": ""}, 422, "text: must not be empty or only whitespace"),
        ({"text": "  \n\t "}, 422, "text: must not be empty or only whitespace"),
        ({"language": "xx"}, 400, "language: unknown language code 'xx'"),
        ({"language": "de"}, 400, "does not speak 'de'; it speaks en"),
        ({"speaker_embedding": [0.1] * 5}, 422, "speaker_embedding: must be a list of 512 numbers"),
        (
            {"speaker_embedding": ["loud"] * 512},
            422,
            "speaker_embedding[0]: input should be a valid number",
        ),
        ({"gpt_cond_latent": [[0.0] * 1024] * 2}, 422, "gpt_cond_latent: must be 32 lists of 1024"),
        ({"gpt_cond_latent": "none"}, 422, "gpt_cond_latent: input should be a valid list"),
        (
            {"speaker_embedding": named_latents("stranger").to_json()["speaker_embedding"]},
            400,
            "unknown speaker",
        ),
        ({"text": "a" * 2001}, 413, "text: 2001 characters is over this server's limit of 2000"),
        ({"stream_chunk_size": "fast"}, 422, "stream_chunk_size: must be a whole number"),
        ({"stream_chunk_size": 0}, 422, "stream_chunk_size: must be a whole number"),
        ({"add_wav_header": "maybe"}, 422, "add_wav_header"),
    ],
    ids=lambda value: None if isinstance(value, dict | int) else value[:40],
)
def test_bad_stream_requests_are_refused_with_a_json_error(
    http: httpx.Client, latents, changes, status, expected
):
    response = http.post("/tts_stream", json={**speech(latents, "Hello there."), **changes})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert expected in response.json()["error"]


def test_bad_tts_requests_are_refused_too(http: httpx.Client, latents):
    response = http.post("/tts", json=speech(latents, "Hallo.", language="de"))
    assert response.status_code == 400
    assert "does not speak 'de'" in response.json()["error"]
    response = http.post("/tts", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"].startswith("body: not valid JSON")


@pytest.mark.parametrize("route", ["/tts_stream", "/tts"])
def test_hostile_text_is_spoken_whole_or_refused_before_any_audio(
    http: httpx.Client, latents, route
):
    """A run of digits long enough to break an engine's number reading is spoken digit by
    digit, the whole stream arriving; text with nothing to say is a 422 in words."""
    digits = http.post(route, json=speech(latents, "My number is " + "9" * 120 + "."))
    assert digits.status_code == 200
    assert digits.headers["content-type"].startswith("audio/")
    assert len(digits.content) > 24000 * 2 * 10  # 120 digits take well over ten seconds
    for text in ("😀🎉", "\x01\x02\x03", "?!"):
        refused = http.post(route, json=speech(latents, text))
        assert refused.status_code == 422, text
        assert refused.json()["error"].startswith("text: has nothing to speak"), text


# --- The queue ---


def finished_requests(log: Path, since: int) -> list[int]:
    """Character counts of the stream requests the server finished after byte `since` of its log."""
    return [
        int(n) for n in re.findall(r"tts_stream done: .*? chars=(\d+)", log.read_text()[since:])
    ]


def test_concurrent_requests_all_complete_in_arrival_order(
    server: Server, http: httpx.Client, latents
):
    texts = ["One apple.", "Two red apples.", "Three green apples here."]
    log_start = len(server.log.read_text())
    with ExitStack() as streams:
        responses = []
        for text in texts:
            # The server answers with headers before the request joins its queue, so each
            # request has arrived before the next one is sent.
            body = speech(latents, text, add_wav_header=False)
            responses.append(streams.enter_context(http.stream("POST", "/tts_stream", json=body)))
        assert [response.status_code for response in responses] == [200, 200, 200]
        audio = [response.read() for response in responses]
    assert all(seconds(pcm) > 0.3 for pcm in audio)
    assert finished_requests(server.log, log_start) == [len(text) for text in texts]


def test_a_client_that_hangs_up_mid_stream_frees_the_queue(http: httpx.Client, latents):
    """The server notices the hang-up and stops that synthesis (counted as cancelled), rather
    than speaking the rest of a long text to nobody while the next request waits."""

    def cancelled() -> float:
        page = http.get("/metrics").text
        try:
            return metric(page, "tts_requests_total", route="tts_stream", outcome="cancelled")
        except AssertionError:
            return 0.0  # no request cancelled yet: the labelled sample does not exist

    before = cancelled()
    long_text = " ".join([SENTENCES] * 10)
    with http.stream("POST", "/tts_stream", json=speech(latents, long_text)) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        assert next(chunks)
    # Hung up after the first chunk: the server cancels it, and the next request gets its audio.
    deadline = time.monotonic() + 10
    while cancelled() == before:
        assert time.monotonic() < deadline, "the abandoned synthesis was not cancelled"
        time.sleep(0.1)
    assert http.get("/ready").json()["queued"] == 0
    after = http.post("/tts_stream", json=speech(latents, PANGRAM, add_wav_header=False))
    assert after.status_code == 200
    assert seconds(after.content) > 1.0
