"""`python -m bot`: serve the bot on BOT_HOST:BOT_PORT."""

import uvicorn

from bot.app import create_app
from bot.config import load_settings


def main() -> None:
    settings = load_settings()
    uvicorn.run(create_app(settings), host=settings.bot_host, port=settings.bot_port)


if __name__ == "__main__":
    main()
