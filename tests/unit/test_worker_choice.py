"""How the front picks a worker for a new call, from what each worker's `/health` says.

The workers' answers are given here (the worker processes are not started); the e2e tests in
tests/e2e/test_workers.py run real ones."""

import shutil

import pytest

from bot.config import Settings
from bot.workers import Workers


def healthy(calls: int, places: int, loading: bool = False) -> tuple[int, dict]:
    return 200, {"status": "ok", "loading": loading, "calls": calls, "max_calls": places}


@pytest.fixture
def workers():
    workers = Workers(Settings(bot_workers=3, bot_max_calls=6))
    yield workers
    shutil.rmtree(workers.directory)


def answering(workers: Workers, *answers: tuple[int, dict] | None) -> None:
    for worker, answer in zip(workers.all, answers, strict=True):

        async def get_json(path: str, answer=answer):
            assert path == "/health"
            return answer

        worker.get_json = get_json  # type: ignore[method-assign]


async def test_the_worker_with_most_free_places_gets_the_call(workers):
    answering(workers, healthy(2, 2), healthy(1, 2), healthy(0, 2))
    assert (await workers.least_loaded()).index == 2
    workers.all[2].pending = 2  # two offers on their way to it: it is full too
    assert (await workers.least_loaded()).index == 1


async def test_a_worker_still_loading_gets_a_call_only_when_no_loaded_one_has_room(workers):
    # Worker 0 has just been restarted: it answers, with every place free, but cannot take a
    # call until Whisper is loaded.
    answering(workers, healthy(0, 2, loading=True), healthy(1, 2), None)
    assert (await workers.least_loaded()).index == 1
    # With the loaded workers full, it is the one that answers: "still loading; retry
    # shortly" is truer than "busy" when its places are about to open.
    answering(workers, healthy(0, 2, loading=True), healthy(2, 2), (503, {}))
    assert (await workers.least_loaded()).index == 0
    answering(workers, None, None, None)
    assert await workers.least_loaded() is None
