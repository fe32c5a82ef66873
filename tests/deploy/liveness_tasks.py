"""A task for tests/deploy/test_worker_liveness.py, loaded only by the worker that test starts (--include)."""

import logging
import os
import time

from celery import shared_task

import controlplane.celery

# The heartbeat timer's interval in this worker only (imported by --include before its bootsteps start):
# test_worker_liveness waits for a few timer touches, which took a minute at the product's 10 s.
if interval := os.environ.get("LIVENESS_TEST_TOUCH_INTERVAL"):
    controlplane.celery.TOUCH_INTERVAL = float(interval)
    logging.getLogger(__name__).warning("heartbeat every %s s", controlplane.celery.TOUCH_INTERVAL)


@shared_task(name="tests.hold_the_main_loop")
def hold_the_main_loop(seconds: float) -> None:
    """On a solo pool the task runs in the worker's main thread: its event loop stands still meanwhile,
    as a hung worker's would."""
    time.sleep(seconds)
