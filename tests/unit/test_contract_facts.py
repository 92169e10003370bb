"""Facts the bot, the page and the TTS server must agree on, each defined once per side and
pinned here against the other side: a drift fails CI. (The language codes are pinned in
tests/unit/test_bot_config.py, the WebSocket limits and close codes are defined once in
bot/transports/websocket.py.)"""

from __future__ import annotations

import re

from bot import pipeline, stt, tts
from tests.support import ROOT
from xtts.audio import OUTPUT_RATE


def test_the_bot_hears_the_server_at_the_contracts_rate():
    assert tts.SERVER_RATE == OUTPUT_RATE == pipeline.AUDIO_OUT_RATE == 24000


def test_the_page_captures_at_the_rate_whisper_hears():
    page = (ROOT / "webclient" / "static" / "audio.js").read_text()
    (captured,) = re.findall(r"export const CAPTURE_RATE = (\d+);", page)
    assert int(captured) == stt.SAMPLE_RATE == pipeline.AUDIO_IN_RATE
