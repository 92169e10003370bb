"""Canaries: every Pipecat (and aiortc) internal the kit relies on (`RELIED_ON` in
bot/pipecat_compat.py) is still there in the installed release, with the parameters the kit
passes, so that an upgrade that renames or reshapes one fails here first, naming it and what in
the kit depends on it, not in a call. Then the internals the kit reads most, read as it does."""

from __future__ import annotations

import importlib
import inspect
import re
from importlib.metadata import version
from typing import Any

import pytest
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState
from pipecat.turns.speculation_gate import SpeculationGate

from bot import pipecat_compat
from bot.answers import AnswerGuard
from bot.llm import KitLLMService
from bot.pipecat_compat import RELIED_ON, Internal
from bot.speculation import SpeakingGate
from tests.support import ROOT

DISTRIBUTIONS = {"pipecat": "pipecat-ai", "aiortc": "aiortc"}
NAMES = [(entry, name) for entry in RELIED_ON for name in entry.names]


def resolve(owner: str) -> Any:
    """ "module:Outer.Inner" (or "module") as the object it names."""
    module, _, qualname = owner.partition(":")
    found: Any = importlib.import_module(module)
    for part in filter(None, qualname.split(".")):
        found = getattr(found, part)
    return found


def assigned(cls: type, attribute: str) -> bool:
    """Whether `cls` or a class it inherits from sets `self.<attribute>` in its source (an
    instance attribute; a name-mangled one as written there, `self.__name`)."""
    for base in cls.__mro__[:-1]:
        prefix = f"_{base.__name__.lstrip('_')}"
        spelled = (
            attribute.removeprefix(prefix) if attribute.startswith(f"{prefix}__") else attribute
        )
        try:
            source = inspect.getsource(base)
        except (OSError, TypeError):
            continue
        if re.search(rf"self\.{re.escape(spelled)}\b\s*(:[^=\n]*)?=", source):
            return True
    return False


def broken(entry: Internal, name: str) -> str | None:
    """What is wrong with `name` of `entry` in the installed release; None if nothing."""
    attribute, _, params = name.partition("(")
    try:
        owner = resolve(entry.owner)
    except (ImportError, AttributeError):
        return f"{entry.owner} itself is gone"
    if not params:
        found = hasattr(owner, attribute) or (inspect.isclass(owner) and assigned(owner, attribute))
        return None if found else f"{attribute} is gone"
    method = getattr(owner, attribute, None)
    if not callable(method):
        return f"the method {attribute} is gone"
    expected = [p.strip() for p in params.rstrip(")").split(",") if p.strip()]
    missing = [p for p in expected if p not in inspect.signature(method).parameters]
    return f"{attribute} no longer takes {', '.join(missing)}" if missing else None


@pytest.mark.parametrize(
    ("entry", "name"), NAMES, ids=[f"{e.owner.split(':')[-1]}.{n}" for e, n in NAMES]
)
def test_the_installed_release_still_has_what_the_kit_relies_on(entry: Internal, name: str):
    package = entry.owner.split(".")[0]
    wrong = broken(entry, name)
    assert wrong is None, (
        f"{package} {version(DISTRIBUTIONS[package])}: {entry.owner}: {wrong}. "
        f"The kit relies on it: {entry.kit}. Why no public way: {entry.why}. "
        f"Retired by: {entry.retire}. Mend bot/pipecat_compat.py (and docs/architecture.md)."
    )


def test_pipecat_still_builds_what_the_kit_swaps_by_the_names_it_swaps():
    """The process-wide swaps work only while Pipecat looks the classes up by these names when
    it builds a transport's parts."""
    from pipecat.transports.base_output import BaseOutputTransport
    from pipecat.transports.smallwebrtc.transport import SmallWebRTCClient

    assert "BaseOutputTransport.MediaSender(" in inspect.getsource(BaseOutputTransport), (
        "Pipecat no longer builds its media senders as BaseOutputTransport.MediaSender: "
        "drop_stale_audio() (bot/playout.py) would no longer take effect"
    )
    assert "RawAudioTrack(" in inspect.getsource(SmallWebRTCClient), (
        "Pipecat's SmallWebRTC client no longer builds its track by the module's RawAudioTrack: "
        "use_quiet_track() (bot/transports/quiet_track.py) would no longer take effect"
    )


def test_the_architecture_page_lists_every_internal():
    page = (ROOT / "docs" / "architecture.md").read_text()
    section = page.partition("## Pipecat internals the kit relies on")[2].partition("\n## ")[0]
    assert section, "docs/architecture.md has no section 'Pipecat internals the kit relies on'"
    unlisted = sorted({n.partition("(")[0] for _, n in NAMES} - set(re.findall(r"\w+", section)))
    assert unlisted == [], f"docs/architecture.md leaves out {unlisted} (bot/pipecat_compat.py)"


def test_the_llm_service_uses_the_gate_the_kit_puts_in():
    llm = KitLLMService(
        guard=AnswerGuard(), timeout_secs=1, base_url="http://127.0.0.1:1/v1", api_key="x"
    )
    assert isinstance(llm._speculation_gate, SpeakingGate)
    assert issubclass(SpeakingGate, SpeculationGate)
    assert str(pipecat_compat.openai_client(llm).base_url) == "http://127.0.0.1:1/v1/"


def test_the_vad_keeps_the_state_the_pause_tracking_reads():
    vad = SileroVADAnalyzer()
    vad.set_sample_rate(16000)
    assert pipecat_compat.vad_state(vad) is VADState.QUIET
    assert pipecat_compat.vad_stopping_count(vad) == 0
    assert pipecat_compat.reset_silero_if_due(vad, 0.0) is False  # not due in the first window


async def test_the_callers_webrtc_audio_is_held_for_the_packets_set():
    """A real offer from an aiortc peer, answered by Pipecat's connection: `set_jitter_prefetch`
    reaches the receiver's jitter buffer, which then hands a packet on once that many newer ones
    came."""
    from aiortc import RTCPeerConnection
    from aiortc.jitterbuffer import JitterBuffer
    from aiortc.rtp import RtpPacket
    from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

    caller = RTCPeerConnection()
    caller.addTransceiver("audio", direction="sendrecv")
    await caller.setLocalDescription(await caller.createOffer())
    connection = SmallWebRTCConnection()
    try:
        await connection.initialize(sdp=caller.localDescription.sdp, type="offer")
        pipecat_compat.set_jitter_prefetch(connection, 1)
        (audio,) = [t for t in connection.pc.getTransceivers() if t.kind == "audio"]
        buffer = audio.receiver._RTCRtpReceiver__jitter_buffer
        assert isinstance(buffer, JitterBuffer) and buffer._prefetch == 1
    finally:
        await connection.disconnect()
        await caller.close()

    def packet(n: int) -> RtpPacket:
        packet = RtpPacket(payload_type=111, sequence_number=n, timestamp=960 * n, payload=b"x")
        packet._data = b"x"  # type: ignore[attr-defined]  # the receiver's depayloaded Opus
        return packet

    held = JitterBuffer(capacity=16, prefetch=1)
    assert held.add(packet(0))[1] is None
    assert held.add(packet(1))[1].timestamp == 0  # one packet (20 ms) later
