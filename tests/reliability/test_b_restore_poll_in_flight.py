"""A read that finds another thread of its process polling (its own poll due) skipped its poll and read L1 and L2
as they were: when that poll had drawn before a restore made since, the read served what the restore took back for
up to two poll intervals after it. A poll that started an interval ago or more is now waited for, then the read
polls itself; one that started under an interval ago is still not waited for (a read never waits on a fresh poll).

The other thread's poll is held open after its draw (the database's answer) until the test lets it go."""

from __future__ import annotations

import threading
import time

import pytest

from tests.caching.support import make_stack
from tests.reliability.test_d_database_restore import Backup, _family_name, _read, _rename

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 120  # seconds any wait below allows (a loaded CI machine)


class _WatchedLock:
    """The stack's tick lock, telling when a thread waits on it (a try without waiting is not told)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waited = threading.Event()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        self.waited.set()
        return self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _poll_held_after_its_draw(stack) -> tuple[threading.Thread, threading.Event, threading.Event]:
    """Another thread's poll, held open once the database answered it (its draw made) until `go` is set."""
    drew, go = threading.Event(), threading.Event()
    draw = stack._changed_since_by_database_clock

    def held(since):
        answer = draw(since)
        if not drew.is_set():
            drew.set()
            go.wait(WAIT)
        return answer

    stack._changed_since_by_database_clock = held
    poller = threading.Thread(target=stack.tick, kwargs={"force": True}, daemon=True)
    poller.start()
    assert drew.wait(WAIT), "the other thread's poll did not draw"
    return poller, drew, go


def _request(stack, patient, answers: list) -> threading.Thread:
    """A request's cached read, in its own thread (it may wait for the other thread's poll)."""

    def read():
        answers.append(stack.get_or_load("patient_data", ["restore-test-name", patient.pk],
                                         lambda: _family_name(patient.pk), scope=f"patient:{patient.pk}"))  # fmt: skip

    request = threading.Thread(target=read, daemon=True)
    request.start()
    return request


def _until(condition) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_a_request_waits_for_a_poll_running_an_interval_or_more_that_drew_before_the_restore(patient):
    stack = make_stack(single_flight_wait=WAIT)  # the most a read waits for the poll: the test's own bound
    assert _read(stack, patient) == "Before"
    backup = Backup()
    _rename(patient, "After the backup")
    assert _read(stack, patient) == "After the backup"  # in L1, and in L2
    stack._tick_lock = lock = _WatchedLock()

    poller, _, go = _poll_held_after_its_draw(stack)  # drew before the restore
    backup.restore()
    # The held poll started an interval ago or more, and the request's own poll is due.
    _until(
        lambda: time.monotonic() - max(stack._polled_at, getattr(stack, "_poll_started", 0.0)) >= stack.poll_interval
    )
    answers: list = []
    request = _request(stack, patient, answers)
    _until(lambda: lock.waited.is_set() or not request.is_alive())
    go.set()
    poller.join(WAIT)
    request.join(WAIT)
    assert not request.is_alive() and not poller.is_alive()
    assert answers == ["Before"]  # was ["After the backup"]: L1 (or L2) of before the restore


def test_a_request_does_not_wait_for_a_poll_that_started_under_an_interval_ago(patient):
    stack = make_stack(poll_interval=3600, single_flight_wait=WAIT)  # the held poll started under an interval ago
    assert _read(stack, patient) == "Before"
    stack._tick_lock = lock = _WatchedLock()
    poller, _, go = _poll_held_after_its_draw(stack)
    stack._polled_at -= 7200  # the request's own poll is due
    answers: list = []
    request = _request(stack, patient, answers)
    request.join(WAIT)
    waited = lock.waited.is_set()
    go.set()
    poller.join(WAIT)
    assert not waited, "the request waited for a poll that started under an interval ago"
    assert answers == ["Before"]
