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
