"""Facts the bot and the TTS server must agree on, each defined once per side and pinned here
against the other side: a drift fails CI. (The language codes are pinned in
tests/unit/test_bot_config.py, the WebSocket limits and close codes are defined once in
bot/transports/websocket.py; that the page captures at the rate Whisper hears, the browser
suite's conversations over the WebSocket prove, tests/browser/test_conversation.py.)"""

from __future__ import annotations

from bot import pipeline, tts
from xtts.audio import OUTPUT_RATE


def test_the_bot_hears_the_server_at_the_contracts_rate():
    assert tts.SERVER_RATE == OUTPUT_RATE == pipeline.AUDIO_OUT_RATE == 24000
