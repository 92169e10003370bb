"""Canaries: the Pipecat internals the turn taking and the held answer rely on still exist in
the installed release (an upgrade that renames one fails here first, not in a call)."""

from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState
from pipecat.turns.speculation_gate import SpeculationGate

from bot.answers import AnswerGuard
from bot.llm import KitLLMService
from bot.speculation import SpeakingGate


def test_the_llm_service_keeps_its_speculation_gate_where_the_kit_replaces_it():
    llm = KitLLMService(
        guard=AnswerGuard(), timeout_secs=1, base_url="http://127.0.0.1:1/v1", api_key="x"
    )
    assert isinstance(llm._speculation_gate, SpeakingGate)
    assert issubclass(SpeakingGate, SpeculationGate)


def test_the_vad_keeps_the_state_the_pause_tracking_reads():
    vad = SileroVADAnalyzer()
    vad.set_sample_rate(16000)
    assert vad._vad_state is VADState.QUIET
    assert vad._vad_stopping_count == 0
    assert callable(vad._run_analyzer)


def test_smart_turn_keeps_its_endpoint_prediction():
    assert callable(LocalSmartTurnAnalyzerV3._predict_endpoint)


async def test_the_callers_webrtc_audio_is_held_for_the_packets_set():
    """A real offer from an aiortc peer, answered by Pipecat's connection: `hold_audio` reaches
    the receiver's jitter buffer, which then hands a packet on once that many newer ones came."""
    from aiortc import RTCPeerConnection
    from aiortc.jitterbuffer import JitterBuffer
    from aiortc.rtp import RtpPacket
    from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

    from bot.transports.webrtc import hold_audio

    caller = RTCPeerConnection()
    caller.addTransceiver("audio", direction="sendrecv")
    await caller.setLocalDescription(await caller.createOffer())
    connection = SmallWebRTCConnection()
    try:
        await connection.initialize(sdp=caller.localDescription.sdp, type="offer")
        hold_audio(connection, 1)
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
