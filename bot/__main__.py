"""`python -m bot`: serve the bot on BOT_HOST:BOT_PORT.

With BOT_WORKERS above 1 this process is the front and the calls run in worker processes
(`bot/workers.py`), each started as `python -m bot --worker N --socket PATH --places N`.
"""

import argparse
import sys

import uvicorn
from loguru import logger

from bot.app import create_app
from bot.config import load_settings
from bot.transports.websocket import MAX_MESSAGE_BYTES
from bot.workers import create_front, exit_with_parent


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the bot on BOT_HOST:BOT_PORT.")
    parser.add_argument("--worker", type=int, help="run as this worker of a front process")
    parser.add_argument("--socket", help="the worker's unix socket")
    parser.add_argument("--places", type=int, help="the worker's share of BOT_MAX_CALLS")
    args = parser.parse_args()
    settings = load_settings()
    logger.remove()  # loguru starts at DEBUG, which would log every transcript
    where = "" if args.worker is None else f"worker {args.worker} | "
    logger.add(
        sys.stderr,
        level=settings.bot_log_level.upper(),
        format="<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
        + where
        + "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - "
        "<level>{message}</level>",
    )
    # A bigger WebSocket message is refused (close 1009) before it is read, on every socket.
    common = {"log_level": settings.bot_log_level, "ws_max_size": MAX_MESSAGE_BYTES}
    if args.worker is not None:
        exit_with_parent()
        app = create_app(settings, places=args.places, worker=args.worker)
        # The front logs each request as it arrives; the worker's own line would repeat it.
        uvicorn.run(app, uds=args.socket, access_log=False, **common)
    elif settings.workers > 1:
        uvicorn.run(
            create_front(settings), host=settings.bot_host, port=settings.bot_port, **common
        )
    else:
        uvicorn.run(create_app(settings), host=settings.bot_host, port=settings.bot_port, **common)


if __name__ == "__main__":
    main()
