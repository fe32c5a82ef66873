"""The fail-closed refusals held back within an interval are logged even when no refusal follows them: when the
interval ends (a timer) and at process exit. Before, only the next refusal wrote the count, so the refusals of
the last seconds of an outage never reached the log."""

from __future__ import annotations

import logging
import re
import time

import pytest

from apps.ratelimits.throttling import refusal_log
from tests.ratelimits.test_fail_closed_log_d import _refused, fail_closed_without_redis  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fail_closed_without_redis", "no_timer_left")]


@pytest.fixture
def no_timer_left():
    yield
    cancel = getattr(refusal_log, "_cancel_timer", None)
    if cancel is not None:
        with refusal_log._lock:
            cancel()


def _counts(caplog) -> list[int]:
    lines = [r.getMessage() for r in caplog.records if r.name == "apps.ratelimits.throttling"]
    return [int(re.search(r"(\d+) request\(s\) refused", line).group(1)) for line in lines]


def test_the_refusals_held_back_are_logged_when_the_interval_ends(
    api,
    issue_token,
    caplog,
):
    refusal_log.interval = 2.0
    caplog.set_level(logging.INFO)
    _refused(api, issue_token("audit:read"), 3)  # and then no refusal: Redis is back, or no one asks
    deadline = time.monotonic() + 20
    while sum(_counts(caplog)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    counts = _counts(caplog)
    assert sum(counts) == 3, counts  # before: [1], the other 2 never logged
    assert counts[0] == 1


def test_the_refusals_held_back_are_logged_at_exit(
    api,
    issue_token,
    caplog,
):
    """What atexit calls: the timer is a daemon thread, and an exit inside the interval would lose them."""
    refusal_log.interval = 3600
    caplog.set_level(logging.INFO)
    _refused(api, issue_token("audit:read"), 3)
    assert _counts(caplog) == [1]
    refusal_log.flush()
    assert _counts(caplog) == [1, 2]
    refusal_log.flush()  # nothing held back: no line
    assert _counts(caplog) == [1, 2]
    lines = [r.getMessage() for r in caplog.records if r.name == "apps.ratelimits.throttling"]
    assert "audit_logs" in lines[1] and "/api/" not in lines[1]
