"""The circuit breaker of the shared cache and the metrics database: open from a failure, closed again by a
probe that runs in the background, never in a caller's thread."""

import threading
from types import SimpleNamespace

import pytest

from apps.core import breaker as breaker_module
from apps.core.breaker import CircuitBreaker
from tests.helpers import wait_for


def test_a_breaker_closes_once_its_probe_succeeds():
    breaker = CircuitBreaker(lambda: None, name="test dependency", open_seconds=0)
    breaker.failure()
    assert breaker.available() is False  # the probe is started, the caller told "not yet"
    wait_for(lambda: breaker.state == CircuitBreaker.CLOSED, 5, "the probe to close the breaker")
    assert breaker.available() is True and breaker.trips == 1


def test_a_probe_thread_that_could_not_start_is_tried_again(monkeypatch):
    """A process at its thread limit ("can't start new thread") left the breaker marked as probing, with no
    probe running: it stayed open for good, whatever the dependency did. The limit itself is simulated."""
    breaker = CircuitBreaker(lambda: None, name="test dependency", open_seconds=0)
    breaker.failure()
    real_start = threading.Thread.start

    def refused(thread):
        if thread.name.startswith("probe "):
            raise RuntimeError("can't start new thread")
        return real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", refused)
    assert breaker.available() is False
    monkeypatch.undo()
    assert breaker.available() is False
    wait_for(lambda: breaker.state == CircuitBreaker.CLOSED, 5, "the probe to close the breaker")


def test_concurrent_callers_start_one_probe_and_a_failing_probe_keeps_it_open():
    started = []
    release = threading.Event()

    def probe():
        started.append(1)
        release.wait(5)
        raise ConnectionError("still down")

    breaker = CircuitBreaker(probe, name="test dependency", open_seconds=0)
    breaker.failure()
    callers = [threading.Thread(target=breaker.available) for _ in range(20)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    wait_for(lambda: started, 5, "the probe to start")
    release.set()
    wait_for(lambda: not breaker._probing, 5, "the probe to finish")
    assert len(started) == 1 and breaker.state == CircuitBreaker.OPEN and breaker.trips == 1


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level("ERROR", logger="apps.core.breaker")


def test_seconds_until_probe_counts_down_the_back_off_and_is_zero_when_closed_or_due(monkeypatch):
    clock = [1000.0]
    # The breaker module's clock only: patching time.monotonic itself would stop every event loop's clock.
    monkeypatch.setattr(breaker_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    breaker = CircuitBreaker(lambda: None, name="test dependency", open_seconds=30)
    assert breaker.seconds_until_probe() == 0.0
    breaker.failure()
    assert breaker.seconds_until_probe() == 30.0
    clock[0] += 12.5
    assert breaker.seconds_until_probe() == 17.5
    clock[0] += 60
    assert breaker.seconds_until_probe() == 0.0
