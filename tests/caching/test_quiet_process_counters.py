"""A process's last cached reads reach the shared counters (admin, Prometheus, the optimizer) though no read
follows them: a flusher thread writes them once the process goes quiet, and its exit writes what is left."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.db.models import Sum

from apps.caching.models import CacheStat
from tests.helpers import REPO_ROOT, database_url

pytestmark = pytest.mark.django_db(transaction=True)

# Six identical cached calls (one load, five L1 hits), then the process either waits on its stdin, reading
# nothing more, or ends.
READER = """
import sys, django
django.setup()
from apps.caching.stack import default_stack
stack = default_stack()
for _ in range(6):
    stack.get_or_load("audit_logs", ["page", 1], lambda: {"rows": [1]})
print(stack.process, flush=True)
if sys.argv[1] == "quiet":
    sys.stdin.readline()
"""
# Far past the stack's 5 s flush interval: a bound on a wait for an outcome, not a timing under test.
QUIET_WAIT_SECONDS = 60


def start_reader(mode: str) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings", "DATABASE_URL": database_url()}
    return subprocess.Popen(
        [sys.executable, "-c", READER, mode],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def counted(process: str) -> dict:
    rows = CacheStat.objects.filter(namespace="audit_logs", process=process)
    return rows.aggregate(hits=Sum("hits"), loads=Sum("loads"))


def test_a_quiet_process_reports_its_last_reads_without_another_read():
    reader = start_reader("quiet")
    try:
        process = reader.stdout.readline().strip()
        assert process, "the reader did not start"
        deadline = time.monotonic() + QUIET_WAIT_SECONDS
        while counted(process)["hits"] != 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert reader.poll() is None, "the reader ended: its exit, not the quiet flush, would have written them"
        assert counted(process) == {"hits": 5, "loads": 1}
    finally:
        reader.kill()
        reader.wait()


def test_a_process_that_ends_reports_its_last_reads():
    reader = start_reader("exit")
    process = reader.stdout.readline().strip()
    assert reader.wait(timeout=QUIET_WAIT_SECONDS) == 0
    assert counted(process) == {"hits": 5, "loads": 1}
