"""A web process that exits (a worker's max_requests restart, a deploy, a scale-down) writes the request timings
it had not flushed yet: a real Python process with the product's settings, on the test database."""

from __future__ import annotations

import os

import pytest

from apps.metrics.models import RequestRollup
from tests.helpers import database_url, run_python

pytestmark = pytest.mark.django_db(transaction=True)

RECORD_AND_EXIT = """
import django
django.setup()
from apps.metrics.recorder import recorder
for elapsed_us in (900_000, 1_200_000):
    recorder.record(route="api/v1/exit-test/", method="GET", status=503, client="app", elapsed_us=elapsed_us)
"""


def test_timings_not_flushed_yet_are_written_when_the_process_exits():
    # A flush interval no exit comes near: only the exit's own flush can write them.
    env = {**os.environ, "DATABASE_URL": database_url(), "METRICS_BACKGROUND_FLUSH": "true",
           "METRICS_FLUSH_SECONDS": "3600"}  # fmt: skip
    finished = run_python(RECORD_AND_EXIT, env)
    assert finished.returncode == 0, finished.stderr

    [rollup] = RequestRollup.objects.filter(route="api/v1/exit-test/")
    assert (rollup.count, rollup.errors, rollup.status_class) == (2, 2, "503")  # a class of its own, an error still
