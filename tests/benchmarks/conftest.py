"""The benchmarks' tests' fixtures: a target of their own (tests/benchmarks/support.py's SleepyServer)."""

import pytest

from tests.benchmarks.support import SleepyServer


@pytest.fixture
def sleepy():
    server = SleepyServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
