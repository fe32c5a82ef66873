"""A Procfile process ended by a signal that is not the stop's own (`kill -9`, the OOM killer) ends `make run`
with status 1, as any failed process: honcho's rc -9 came out as `make: *** [run] Error 247`."""

import contextlib
import os
import re
import signal
import sys

import pytest

from tests.helpers import wait_for
from tests.test_lifecycle_stop import _ready, _start, _teardown
from tests.test_make_run_processes import checkout as make_checkout  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals and process groups")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_process_killed_from_outside_ends_make_run_with_status_1(make_checkout, signum):  # noqa: F811
    make, log = _start(make_checkout, "one: sleep 300\ntwo: python server.py two graceful\n")
    pid = None
    try:
        wait_for(lambda: _ready(make_checkout, "two") and "one.1 started" in log.read_text(), 120, "the start", log)
        pid = int(re.search(r"one\.1 started \(pid=(\d+)\)", log.read_text()).group(1))
        os.kill(pid, signum)  # from outside the run: no stop of ours had begun
        make.wait(timeout=120)
        text = log.read_text()
        assert f"one.1 stopped (rc=-{signum.value})" in text, text
        assert re.search(r"\] Error 1$", text, re.MULTILINE), text
    finally:
        _teardown(make, make_checkout)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
