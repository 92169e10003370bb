"""`python -m xtts`: run the TTS server with settings from the environment.

Exit status: 0 when stopped, 1 when the engine failed to load, 2 for invalid settings (one line
per bad variable), EXIT_UNAVAILABLE (3) when the engine cannot run on this machine (its packages
or model files are not installed; `make run` then falls back to the offline engine).
"""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

EXIT_UNAVAILABLE = 3


def main() -> int:
    from xtts.config import Settings, describe_error
    from xtts.engines.choice import InvalidEngineSetting, choose_engine

    # One plain line per bad variable instead of a traceback.
    try:
        settings = Settings()
    except ValidationError as error:
        for line in describe_error(error):
            print(line, file=sys.stderr)
        return 2
    try:
        choice = choose_engine(settings)
    except InvalidEngineSetting as error:
        print(error, file=sys.stderr)
        return 2

    import uvicorn

    from xtts.app import create_app
    from xtts.engines.base import EngineUnavailable, create_engine

    logging.basicConfig(
        level=settings.tts_log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if choice.auto_choice:
        logging.getLogger("xtts").info(choice.auto_choice)
    failed: list[BaseException] = []

    def stop(error: BaseException) -> None:
        failed.append(error)
        server.should_exit = True

    app = create_app(settings, engine=create_engine(choice.name, settings), on_load_failure=stop)
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
    if not failed:
        return 0
    return EXIT_UNAVAILABLE if isinstance(failed[0], EngineUnavailable) else 1


if __name__ == "__main__":
    sys.exit(main())
