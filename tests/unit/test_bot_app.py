"""The bot's HTTP surface with its real app: page, health, readiness, and offer validation."""

import json
import os
import re
import threading

import pytest
from fastapi.testclient import TestClient
from pipecat.transports.smallwebrtc.connection import IceServer
from starlette.websockets import WebSocketDisconnect

from bot.app import WEBCLIENT, create_app
from bot.config import Settings
from bot.metrics import EXECUTOR_THREAD_PREFIX
from bot.models import bundled_whisper_path
from tests.support import bot_app_client, metric


@pytest.fixture(scope="module")
def client():
    with bot_app_client() as client:
        yield client


def test_page_and_every_static_file_are_served_and_name_no_third_party_host(client):
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="kit-config"' in page.text and "/static/app.js" in page.text
    static = WEBCLIENT / "static"
    files = sorted(p for p in static.rglob("*") if p.is_file())
    assert files
    texts = [page.text]
    for path in files:
        response = client.get(f"/static/{path.relative_to(static).as_posix()}")
        assert response.status_code == 200, path
        texts.append(response.text)
    # Works with no internet: no CDN, nothing that phones home (localhost may be named).
    for text in texts:
        assert not re.findall(r"(?:https?|wss?)://(?!localhost\b)[\w-]+\.[\w.-]+", text)


def test_health_answers_while_dependencies_are_down(client):
    # The call limit, by default one call per core.
    assert client.get("/health").json() == {
        "status": "ok",
        "loading": False,  # Whisper is loaded
        "calls": 0,
        "max_calls": os.cpu_count(),
        "refused": 0,
    }


def test_metrics_are_served_in_prometheus_format(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    page = response.text
    assert metric(page, "kit_calls_active") == 0
    assert metric(page, "kit_calls_max") == os.cpu_count()
    assert metric(page, "kit_calls_refused_total") == 0
    assert metric(page, "kit_turn_seconds_count", stage="total") == 0
    assert metric(page, "kit_dependency_failures_total", service="llm", kind="timeout") == 0


def test_the_default_executor_is_the_bots_own_and_counted(client):
    # Whisper loaded in the default executor: its worker is the app's named pool, whatever the
    # event loop, and /metrics counts exactly those threads (the leak test subtracts them).
    pool = [t for t in threading.enumerate() if t.name.startswith(EXECUTOR_THREAD_PREFIX)]
    assert pool
    assert metric(client.get("/metrics").text, "kit_executor_threads") == len(pool)


def test_ready_names_each_dependency_that_is_down(client):
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["stt"] == "tiny.en (bundled)" or body["stt"].endswith("model")
    assert body["problems"]["llm"].startswith("LLM server unreachable at http://127.0.0.1:")
    assert body["problems"]["tts"].startswith("TTS server unreachable at http://127.0.0.1:")
    assert "stt" not in body["problems"]


SDP = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not json", "body must be JSON"),
        ([1, 2], "body must be a JSON object"),
        ({"type": "offer"}, "sdp: required, the browser's SDP offer, a string"),
        (
            {"sdp": "   ", "type": "offer"},
            "sdp: must be the browser's SDP offer, a string, not blank",
        ),
        ({"sdp": SDP, "type": "answer"}, "type: must be 'offer'"),
        (
            {"sdp": SDP, "type": "offer", "pc_id": 7},
            "pc_id: must be the id returned with the answer, a string",
        ),
        ({"sdp": SDP, "type": "offer", "restart_pc": "yes"}, "restart_pc: must be true or false"),
    ],
)
def test_bad_offers_get_400_naming_the_problem(client, body, error):
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    response = client.post("/api/offer", **kwargs)
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_offers_too_big_or_too_deep_are_refused_in_words(client):
    deep = "[" * 30_000 + "]" * 30_000  # Python's JSON parser gives up (RecursionError)
    response = client.post("/api/offer", content=deep)
    assert (response.status_code, response.json()) == (400, {"error": "body must be JSON"})
    big = {"sdp": "v=0\r\n" + "a=x\r\n" * 60_000, "type": "offer"}
    response = client.post("/api/offer", json=big)
    assert (response.status_code, response.json()) == (413, {"error": "body over 262144 bytes"})


def test_an_offer_without_audio_or_unusable_is_refused_not_crashed_on(client):
    response = client.post("/api/offer", json={"sdp": "v=0\r\nnonsense\r\n", "type": "offer"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("sdp: the offer has no audio section")
    garbled = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=garbage\r\n"
    response = client.post("/api/offer", json={"sdp": garbled, "type": "offer"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("the offer could not be used")
    assert client.get("/health").json()["calls"] == 0


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"candidates": []}, 400, "pc_id: required, the id returned with the answer, a string"),
        ({"pc_id": "x", "candidates": "no"}, 400, "candidates: must be a list of ICE candidates"),
        (
            {"pc_id": "x", "candidates": [{}]},
            400,
            "candidates[0].candidate: required, the ICE candidate, a string",
        ),
        (
            {"pc_id": "x", "candidates": [{"candidate": "c", "sdp_mline_index": "one"}]},
            400,
            "candidates[0].sdp_mline_index: must be a whole number from 0 to 63",
        ),
        (
            {"pc_id": "x", "candidates": [{"candidate": "c", "sdp_mid": ["0"]}]},
            400,
            "candidates[0].sdp_mid: must be a string",
        ),
        ({"pc_id": "unknown", "candidates": []}, 404, "Peer connection not found"),
    ],
)
def test_bad_ice_candidate_patches(client, body, status, error):
    response = client.patch("/api/offer", json=body)
    assert response.status_code == status
    assert response.json() == {"error": error}


def test_voices_say_in_words_that_the_tts_server_is_down(client):
    response = client.get("/api/voices")
    assert response.status_code == 503
    assert response.json()["error"].startswith("the TTS server is unreachable at http://127.0.0.1:")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ("heart", "options must be a JSON object with voice, language and prompt"),
        ({"voice": 7}, "voice: must be a string"),
        ({"prompt": "x" * 4001}, "prompt: at most 4000 characters (got 4001)"),
        ({"voice": "heart"}, "voice: cannot be checked now, the TTS server is unreachable at"),
    ],
)
def test_bad_call_options_are_refused_before_the_call_starts(client, options, error):
    body = {"sdp": SDP, "type": "offer", "requestData": options}
    response = client.post("/api/offer", json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert client.get("/health").json()["calls"] == 0


@pytest.mark.parametrize(
    ("start", "error"),
    [
        ("hello", "start: the first message must be JSON"),
        ("[" * 100_000 + "]" * 100_000, "start: over 65536 characters"),
        ("[" * 30_000 + "]" * 30_000, "start: the first message must be JSON"),  # too deep
        ('{"type": "offer"}', 'start: the first message must have "type": "start"'),
        ('{"type": "start", "language": 5}', "language: must be a string"),
    ],
)
def test_websocket_start_is_checked_before_any_pipeline(client, start, error):
    with client.websocket_connect("/ws") as ws:
        ws.send_text(start)
        assert ws.receive_json() == {"type": "error", "error": error}
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 1008


def test_ice_servers_from_the_settings_reach_both_the_page_and_aiortc():
    turn = {"urls": "turn:127.0.0.1:3478", "username": "kit", "credential": "secret"}
    settings = Settings(
        whisper_model=bundled_whisper_path(),
        whisper_device="cpu",
        bot_ice_servers=[turn, {"urls": ["stun:127.0.0.1:3478"]}],
    )
    app = create_app(settings)
    with TestClient(app) as client:
        page = client.get("/").text
    embedded = page.split('id="kit-config" type="application/json">')[1].split("</script>")[0]
    assert json.loads(embedded)["ice_servers"] == [turn, {"urls": ["stun:127.0.0.1:3478"]}]
    # aiortc takes them as RTCIceServer objects: a plain dict would fail every offer.
    servers = app.state.webrtc._ice_servers
    assert all(isinstance(server, IceServer) for server in servers)
    assert (servers[0].urls, servers[0].username, servers[0].credential) == (
        "turn:127.0.0.1:3478",
        "kit",
        "secret",
    )
