"""`make up-lite` for real: calls through the proxy's published port only, two bot replicas
sharing the calls (one killed: only its calls end), a TTS process killed mid-call and restarted
by Docker, nothing secret in `docker inspect`, and `make down`."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time

import httpx
import pytest
import websockets
from twilio.request_validator import RequestValidator

from bot.transports.twilio import BUSY
from bot.transports.websocket import TRY_AGAIN_LATER
from scripts.caller import Caller, read_wav
from scripts.llm_server import bundled_gguf
from tests.support import (
    FIXTURES,
    ROOT,
    SocketCaller,
    ask,
    assert_english_speech,
    greeting_of,
    metric,
    rms,
    transcribe,
    words,
)
from tests.support.browser import NO_UDP, CallPage, Microphone
from tests.support.docker import LINES, PROJECT, REPLICAS, docker, make

pytestmark = pytest.mark.docker

FRANCE = read_wav(FIXTURES / "questions" / "france.wav")
SKY = read_wav(FIXTURES / "questions" / "sky.wav")
GREETING_SECS = 8  # silence on the page's microphone while the greeting plays


def test_the_stack_is_ready_through_the_published_port(lite_stack):
    ready = httpx.get(f"{lite_stack.url}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["stt"] == "tiny.en (bundled)"
    # The sentence-end model runs inside the bot's image (llama.cpp needs the system's libgomp).
    replicas = lite_stack.replicas()
    assert len(replicas) == REPLICAS, replicas
    for container in replicas.values():
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
        assert "Whisper" in logs.stderr and "sentence-end model" not in logs.stderr, logs.stderr
    page = httpx.get(lite_stack.url, timeout=10)
    assert page.status_code == 200 and "Miss Harper" in page.text
    # Only the proxy's TCP port is published, on no host network.
    for container in [*replicas.values(), *map(lite_stack.container, ("tts-lite", "llm-lite"))]:
        host = lite_stack.inspect(container)["HostConfig"]
        assert host["NetworkMode"] != "host"
        assert not [port for port, binds in (host["PortBindings"] or {}).items() if binds]
    proxy = lite_stack.inspect(lite_stack.container("proxy-lite"))["HostConfig"]
    assert {p for p, binds in proxy["PortBindings"].items() if binds} == {"7860/tcp"}


async def test_a_webrtc_call_crosses_the_docker_bridge(lite_stack):
    caller = Caller(lite_stack.url)
    await caller.connect()
    try:
        greeting = await greeting_of(caller)
        assert "harper" in transcribe(greeting, 48000)
        transcript, answer, turn = await ask(caller, FRANCE)
        assert "france" in words(transcript), transcript
        assert_english_speech(answer)
        # Whisper's, the LLM's and TTS's stages may be 0: an answer begun at the caller's pause
        # can have its first audio ready before the turn ends.
        assert all(turn["stages_ms"][stage] >= 0 for stage in ("stt", "llm", "tts")), turn
        assert turn["stages_ms"]["endpointing"] > 0, turn
        # The bot offered only its addresses on the Compose network: media crossed the bridge
        # (no host networking, no published UDP port, no TURN server).
        offered = re.findall(
            r"^a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ host",
            caller.pc.remoteDescription.sdp,
            re.M,
        )
        network = json.loads(docker("network", "inspect", f"{PROJECT}_kit"))[0]
        subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
        assert offered and all(ipaddress.ip_address(ip) in subnet for ip in offered), offered
    finally:
        await caller.close()


async def test_a_websocket_call_through_the_published_port(lite_stack):
    url = lite_stack.url.replace("http://", "ws://") + "/ws"
    async with SocketCaller.call(url, {"language": "en"}) as caller:
        assert "harper" in transcribe(await caller.greeting(), caller.rate)
        transcript, answer = await caller.ask(FRANCE)
        assert "france" in words(transcript), transcript
        assert_english_speech(answer, caller.rate)


async def test_replicas_share_the_calls_and_a_killed_one_ends_only_its_own(lite_stack):
    """Two replicas of two lines behind the proxy. Four calls, over WebRTC and the WebSocket,
    fill both; the fifth is refused in words on every transport (offer, /ws, the phone). One
    replica's process is killed: its calls end, the other's go on and answer, the next call
    goes to the live one, and each replica's /metrics is scraped through the proxy."""
    if os.geteuid() != 0:
        pytest.skip("killing a container's process from the host needs root")
    url, ws_url = lite_stack.url, lite_stack.url.replace("http://", "ws://") + "/ws"
    replicas = lite_stack.replicas()
    assert len(replicas) == REPLICAS == 2 and LINES == 2

    async def health(name: str) -> dict:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{url}/replicas/{name}/health")
        response.raise_for_status()
        return response.json()

    callers = [Caller(url), Caller(url)]
    sockets = [SocketCaller(ws_url), SocketCaller(ws_url)]
    killer: asyncio.Task | None = None
    try:
        for caller in callers:
            await caller.connect()
            assert caller.call_url and caller.call_url.endswith("/api/offer")
        for socket in sockets:
            await socket.connect({"language": "en"})
        for call in [*callers, *sockets]:
            await call.wait_for(lambda c=call: c.of_type("bot-stopped-speaking"), 90, "greeting")
        assert [(await health(name))["calls"] for name in replicas] == [LINES, LINES]

        # Every line taken: each transport's fifth caller is told so.
        async with httpx.AsyncClient(timeout=30) as client:
            offer = Caller(url)
            try:
                with pytest.raises(httpx.HTTPStatusError) as refused:
                    await offer.connect()
            finally:
                await offer.close()
            assert refused.value.response.status_code == 503
            assert "busy" in refused.value.response.json()["error"]
            form = {"CallSid": "CA" + "0" * 32, "From": "+15550100", "To": "+15550199"}
            signature = RequestValidator(lite_stack.secrets["TWILIO_AUTH_TOKEN"]).compute_signature(
                f"{url}/twilio/voice", form
            )
            voice = await client.post(
                f"{url}/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}
            )
            assert voice.status_code == 200 and BUSY in voice.text, voice.text
        async with websockets.connect(ws_url) as fifth:
            await fifth.send(json.dumps({"type": "start"}))
            assert "busy" in json.loads(await fifth.recv())["error"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await fifth.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == TRY_AGAIN_LATER

        # The replica holding the first WebRTC call is killed.
        doomed = callers[0].call_url.split("/")[2]
        live = next(name for name in replicas if name != doomed)

        async def keep_down() -> None:  # Docker restarts it at once: killed again each time
            while True:
                pid = (await asyncio.to_thread(lite_stack.inspect, replicas[doomed]))["State"]
                if pid["Pid"]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid["Pid"], signal.SIGKILL)
                await asyncio.sleep(0.05)

        killer = asyncio.create_task(keep_down())
        on_doomed = sum(doomed in c.call_url for c in callers)
        deadline = time.monotonic() + 20
        while sum(s.ended for s in sockets) < LINES - on_doomed:
            assert time.monotonic() < deadline, "the killed replica's WebSocket calls go on"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)
        still = [s for s in sockets if not s.ended]
        assert len(still) == len(sockets) - (LINES - on_doomed), "a live replica's call ended"
        assert (await health(live))["calls"] == LINES

        # The live replica's calls go on: one of them asks and is answered.
        survivors = [c for c in callers if live in c.call_url]
        if survivors:
            transcript, answer, _ = await ask(survivors[0], FRANCE)
        else:
            transcript, answer = await still[0].ask(FRANCE)
        assert "france" in words(transcript), transcript
        assert rms(answer) > 0.01

        # One of them hangs up; the next call goes to the live replica, not the dead one.
        await (survivors[0].close() if survivors else still[0].close())
        deadline = time.monotonic() + 20
        while (await health(live))["calls"] != LINES - 1:
            assert time.monotonic() < deadline, "the hung-up call kept its place"
            await asyncio.sleep(0.2)
        newcomer = Caller(url)
        callers.append(newcomer)
        await newcomer.connect()
        assert newcomer.call_url == f"/replicas/{live}/api/offer"
        assert rms(await greeting_of(newcomer)) > 0.01
        killer.cancel()

        # Docker brings the killed one back, empty; each replica's metrics, through the proxy.
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if not (back := await health(doomed))["loading"]:
                    break
            assert time.monotonic() < deadline, "the killed replica did not come back"
            await asyncio.sleep(1)
        assert back["calls"] == 0
        async with httpx.AsyncClient(timeout=10) as client:
            scraped = {
                name: (await client.get(f"{url}/replicas/{name}/metrics")).text for name in replicas
            }
        assert metric(scraped[live], "kit_calls_max") == LINES
        assert metric(scraped[doomed], "kit_calls_active") == 0
        started = sum(
            metric(scraped[live], "kit_calls_total", transport=k) for k in ("webrtc", "ws")
        )
        assert started >= LINES + 1
    finally:
        if killer:
            killer.cancel()
        for call in [*callers, *sockets]:
            await call.close()


async def test_a_killed_tts_server_is_restarted_and_the_call_recovers(lite_stack):
    """The TTS server's process is killed (not `docker stop`, which Docker treats as wanted) the
    moment the question ends, and killed again each time Docker brings it back until the bot has
    reached for it (a restart can beat the answer to the server): the bot says so to the page,
    and the call works again once the restart policy has brought it back for good."""
    if os.geteuid() != 0:
        pytest.skip("killing a container's process from the host needs root")
    tts = lite_stack.container("tts-lite")
    restarts = lite_stack.inspect(tts)["RestartCount"]
    caller = Caller(lite_stack.url)
    await caller.connect()

    async def keep_down() -> None:
        while not caller.server_messages("error"):
            pid = (await asyncio.to_thread(lite_stack.inspect, tts))["State"]["Pid"]
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.05)

    try:
        await greeting_of(caller)
        caller.mic.say(SKY)
        await asyncio.sleep(max(0.0, caller.mic.speech_end() - time.monotonic()))
        killer = asyncio.create_task(keep_down())
        try:
            errors = await caller.wait_for(lambda: caller.server_messages("error"), 60, "the error")
        finally:
            killer.cancel()
        assert errors[0]["service"] == "tts"
        assert "TTS server" in errors[0]["message"], errors[0]
        back = await caller.wait_for(lambda: caller.server_messages("recovered"), 90, "recovery")
        assert back[0]["service"] == "tts"
        state = lite_stack.inspect(tts)
        assert state["RestartCount"] > restarts, "Docker's restart policy restarted it"
        assert state["State"]["Running"]

        await caller.wait_for(lambda: not caller.bot_speaking(), 60, "quiet")
        _, answer, turn = await ask(caller, FRANCE)
        assert rms(answer) > 0.01, "no answer after the TTS server came back"
        assert turn["total_ms"] > 0 and turn["stages_ms"]["tts"] >= 0, turn
    finally:
        await caller.close()


def test_no_secret_in_docker_inspect(lite_stack):
    """LLM_API_KEY and TWILIO_AUTH_TOKEN reach the bot as secret files, never as variables or
    labels: `docker inspect` of every container and image shows neither."""
    inspected = docker("inspect", *lite_stack.containers())
    inspected += docker(
        "image",
        "inspect",
        *(f"offgrid-voice-kit/{tag}" for tag in ("bot:lite", "tts:lite", "llm:lite")),
    )
    for name, value in lite_stack.secrets.items():
        assert value not in inspected, f"{name} is visible in docker inspect"
    bot = next(iter(lite_stack.replicas().values()))
    for name, value in lite_stack.secrets.items():
        secret_file = f"/run/secrets/{name.lower()}"
        assert docker("exec", bot, "cat", secret_file) == value, secret_file


def test_every_container_runs_as_a_non_root_user(lite_stack):
    for container in lite_stack.containers():
        assert docker("exec", container, "id", "-u").strip() == "10001"


@pytest.mark.browser
async def test_the_host_browser_talks_to_the_container_over_webrtc(lite_stack, open_page):
    """Chromium on the host, the page from the container, WebRTC across the bridge: the
    greeting is heard in the page and a spoken question is answered."""
    page = await open_page(lite_stack.url, mic=True)
    call = CallPage(page)
    await call.connect("webrtc")
    await call.connected("webrtc")
    await call.greeting_heard()
    await call.quiet()
    await Microphone(page).say("france")
    await call.user_lines_at_least(1)
    assert "france" in words((await call.lines("user"))[0])
    await call.bot_lines_at_least(2)
    assert not await call.alert(), await call.alert()


@pytest.mark.browser
async def test_the_page_falls_back_to_the_websocket_where_udp_cannot_pass(lite_stack, open_page):
    """As behind Docker Desktop's VM: no UDP path, so Auto moves the call to /ws on the
    published TCP port."""
    page = await open_page(lite_stack.url, speech=[GREETING_SECS], args=[NO_UDP])
    call = CallPage(page)
    await call.connect("auto")
    await call.connected("websocket", timeout_s=60)
    await call.greeting_heard()


def test_the_lite_llm_serves_a_gguf_from_the_models_folder(lite_stack):
    """LITE_LLM_GGUF names a file under models/ (mounted read-only): `make up-lite` recreates the
    LLM server with it. Last but one: the stack keeps that model until `make down`."""
    gguf = ROOT / "models" / "kit-test-copy.gguf"
    gguf.parent.mkdir(exist_ok=True)
    shutil.copyfile(bundled_gguf(), gguf)
    try:
        env = {**lite_stack.env, "LITE_LLM_GGUF": "models/kit-test-copy.gguf"}
        result = make("up-lite", env, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
        served = docker(
            "exec",
            lite_stack.container("llm-lite"),
            "python",
            "-c",
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:11434/v1/models').read().decode())",
        )
        assert [m["id"] for m in json.loads(served)["data"]] == ["kit-test-copy"]
        assert httpx.get(f"{lite_stack.url}/ready", timeout=10).status_code == 200
    finally:
        gguf.unlink()


def test_make_down_leaves_no_container(lite_stack):
    """Last in this module: `make down` stops the stack it started and leaves nothing behind."""
    assert lite_stack.containers(all_states=True)
    lite_stack.save_logs()
    result = make("down", lite_stack.env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert lite_stack.containers(all_states=True) == []
    assert not [
        n for n in docker("network", "ls", "--format", "{{.Name}}").split() if n.startswith(PROJECT)
    ]
