"""A bot process as one replica behind the kit's proxy, with its real app: the URLs it names for a
call's later requests, and the 503 that sends a call on to another replica while one may take it
(tests/docker runs the proxy itself, with two replicas)."""

import re
import socket
import time

import pytest
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from bot.replica import LAST_TRY_HEADER, ROUTE_HEADER, public_path
from bot.transports.twilio import BUSY
from bot.transports.websocket import TRY_AGAIN_LATER
from tests.support import bot_app_client

PROXIED = {ROUTE_HEADER: "/replicas"}
LAST_TRY = {**PROXIED, LAST_TRY_HEADER: "1"}
HERE = f"/replicas/{socket.gethostname()}"


@pytest.fixture(scope="module")
def full_bot():
    """A one-line bot whose line is taken (Whisper loaded; the LLM and TTS servers down)."""
    with bot_app_client(bot_max_calls=1) as client:
        calls = client.app.state.calls
        assert calls.admit()  # the one line, taken
        yield client


class _Request:
    def __init__(self, headers: dict[str, str]):
        self.headers = headers


def test_a_replica_names_its_own_path_only_behind_the_proxy():
    assert public_path(_Request({}), "/api/offer") == "/api/offer"  # type: ignore[arg-type]
    behind = _Request(PROXIED)
    assert public_path(behind, "/api/offer") == f"{HERE}/api/offer"  # type: ignore[arg-type]
    # Anything but a path in the header is not a route: ignored.
    odd = _Request({ROUTE_HEADER: "http://elsewhere"})
    assert public_path(odd, "/twilio/ws") == "/twilio/ws"  # type: ignore[arg-type]


def test_a_full_replica_refuses_an_offer_with_503_either_way(full_bot):
    for headers in ({}, PROXIED):
        response = full_bot.post(
            "/api/offer",
            json={"sdp": "v=0\r\nm=audio 9 UDP 111\r\n", "type": "offer"},
            headers=headers,
        )
        assert response.status_code == 503
        assert "busy" in response.json()["error"]


def test_a_full_replica_refuses_the_websocket_upgrade_while_another_may_take_it(full_bot):
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        full_bot.websocket_connect("/ws", headers=PROXIED),
    ):
        pass
    assert denied.value.status_code == 503
    assert "the one line is in use" in denied.value.json()["error"]


@pytest.mark.parametrize("headers", [{}, LAST_TRY], ids=["direct", "last-try"])
def test_the_caller_is_told_in_words_when_no_replica_has_room(full_bot, headers):
    with full_bot.websocket_connect("/ws", headers=headers) as ws:
        ws.send_json({"type": "start"})
        assert "the one line is in use" in ws.receive_json()["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == TRY_AGAIN_LATER
    # The phone line: a busy message, not an error Twilio would read out as one.
    voice = full_bot.post("/twilio/voice", data={"CallSid": "CA1"}, headers=headers)
    assert voice.status_code == 200 and BUSY in voice.text


def test_a_full_replica_hands_the_phone_webhook_on_with_503(full_bot):
    voice = full_bot.post("/twilio/voice", data={"CallSid": "CA1"}, headers=PROXIED)
    assert voice.status_code == 503 and "busy" in voice.json()["error"]


def test_the_phone_stream_is_sent_back_to_the_replica_that_took_the_call(full_bot):
    calls = full_bot.app.state.calls
    calls.release()  # the line free again
    try:
        twiml = full_bot.post("/twilio/voice", data={"CallSid": "CA2"}, headers=PROXIED).text
        url = re.search(r'<Stream url="([^"]+)"', twiml)
        assert url and url[1] == f"wss://testserver{HERE}/twilio/ws", twiml
        direct = full_bot.post("/twilio/voice", data={"CallSid": "CA3"}).text
        assert '<Stream url="wss://testserver/twilio/ws"' in direct
    finally:
        assert calls.admit()


def test_a_socket_holds_the_last_line_from_its_upgrade_so_the_next_is_handed_on():
    """Two sockets arriving together at a one-line replica: the first takes the line at its
    upgrade, before its start message, so the second is denied while the proxy can still send it
    elsewhere; a socket that leaves without starting a call gives the line back."""
    with bot_app_client(bot_max_calls=1) as bot:
        calls = bot.app.state.calls
        with bot.websocket_connect("/ws", headers=PROXIED):
            assert calls.active == 1
            with (
                pytest.raises(WebSocketDenialResponse) as denied,
                bot.websocket_connect("/ws", headers=PROXIED),
            ):
                pass
            assert denied.value.status_code == 503
        deadline = time.monotonic() + 10
        while calls.active:
            assert time.monotonic() < deadline, "the line was not given back"
            time.sleep(0.05)
        with bot.websocket_connect("/ws", headers=PROXIED) as ws:
            ws.send_json({"type": "nonsense"})
            assert "start" in ws.receive_json()["error"]
        while calls.active:
            assert time.monotonic() < deadline, "a refused socket kept the line"
            time.sleep(0.05)
