"""`python -m bot`: serve the bot on BOT_HOST:BOT_PORT.

One process is one replica: Compose runs BOT_REPLICAS of them behind the kit's proxy
(docker/proxy.conf), which finds each call's replica by the path.
"""

import sys

import uvicorn
from loguru import logger

from bot.app import create_app
from bot.config import load_settings
from bot.transports.websocket import MAX_MESSAGE_BYTES


def main() -> None:
    settings = load_settings()
    logger.remove()  # loguru starts at DEBUG, which would log every transcript
    logger.add(
        sys.stderr,
        level=settings.bot_log_level.upper(),
        format="<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
        "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - "
        "<level>{message}</level>",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.bot_host,
        port=settings.bot_port,
        log_level=settings.bot_log_level,
        # A bigger WebSocket message is refused (close 1009) before it is read, on every socket.
        ws_max_size=MAX_MESSAGE_BYTES,
    )


if __name__ == "__main__":
    main()
