"""A task for tests/deploy/test_worker_liveness.py, loaded only by the worker that test starts (--include)."""

import time

from celery import shared_task


@shared_task(name="tests.hold_the_main_loop")
def hold_the_main_loop(seconds: float) -> None:
    """On a solo pool the task runs in the worker's main thread: its event loop stands still meanwhile,
    as a hung worker's would."""
    time.sleep(seconds)
