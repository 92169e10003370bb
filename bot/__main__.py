"""`python -m bot`: serve the bot on BOT_HOST:BOT_PORT."""

import sys

import uvicorn
from loguru import logger

from bot.app import create_app
from bot.config import load_settings


def main() -> None:
    settings = load_settings()
    logger.remove()  # loguru starts at DEBUG, which would log every transcript
    logger.add(sys.stderr, level=settings.bot_log_level.upper())
    uvicorn.run(
        create_app(settings),
        host=settings.bot_host,
        port=settings.bot_port,
        log_level=settings.bot_log_level,
        # WebSocket messages are small (20 ms of audio, RTVI JSON): a bigger one is refused
        # (close 1009) before it is read, on every socket, Twilio's included.
        ws_max_size=64 * 1024,
    )


if __name__ == "__main__":
    main()
