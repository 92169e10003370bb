"""`python -m xtts`: run the TTS server with settings from the environment."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError


def main() -> int:
    from xtts.config import Settings, describe_error

    try:
        settings = Settings()
    except ValidationError as error:
        # One plain line per bad variable instead of a traceback.
        for line in describe_error(error):
            print(line, file=sys.stderr)
        return 2

    import uvicorn

    from xtts.app import create_app

    logging.basicConfig(
        level=settings.tts_log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if settings.auto_choice:
        logging.getLogger("xtts").info(settings.auto_choice)
    failed: list[BaseException] = []

    def stop(error: BaseException) -> None:
        failed.append(error)
        server.should_exit = True

    app = create_app(settings, on_load_failure=stop)
    # The app logs one line per request itself, so uvicorn's access log stays off.
    config = uvicorn.Config(
        app,
        host=settings.tts_host,
        port=settings.tts_port,
        log_level=settings.tts_log_level,
        access_log=False,
    )
    server = uvicorn.Server(config)
    server.run()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
