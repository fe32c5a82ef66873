"""The database limiter (embedded mode, or Redis down) set hits stamped ahead of the clock back to now with an
UPDATE on every hit, though there nearly never are any: a write per request for nothing. It clamps in Python
and writes only when some stamp is ahead."""

from __future__ import annotations

import time
import uuid

import pytest
from django.db import connections, router
from django.test.utils import CaptureQueriesContext

from apps.ratelimits.limiter import FUTURE_TOLERANCE_MS, DatabaseSlidingWindow
from apps.ratelimits.models import RateLimitHit

pytestmark = pytest.mark.django_db(transaction=True)

DAY_MS = 24 * 3600 * 1000


def _updates(queries) -> list[str]:
    table = RateLimitHit._meta.db_table
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE") and table in q["sql"]]


def _connection():
    return connections[router.db_for_write(RateLimitHit)]


def test_a_hit_with_no_stamp_ahead_issues_no_update():
    key = f"r3-no-update:{uuid.uuid4().hex}"
    limiter = DatabaseSlidingWindow()
    assert limiter.hit(key, limit=5, window_seconds=60).allowed
    with CaptureQueriesContext(_connection()) as captured:
        decision = limiter.hit(key, limit=5, window_seconds=60)
    assert decision.allowed and decision.remaining == 3
    assert _updates(captured.captured_queries) == []  # the old limiter: one UPDATE per hit
    assert RateLimitHit.objects.filter(key=key).count() == 2


def test_stamps_ahead_are_still_set_back_to_now_and_counted():
    key = f"r3-ahead:{uuid.uuid4().hex}"
    ahead = int(time.time() * 1000) + DAY_MS
    RateLimitHit.objects.bulk_create([RateLimitHit(key=key, at_ms=ahead), RateLimitHit(key=key, at_ms=ahead + 1)])
    limiter = DatabaseSlidingWindow()
    with CaptureQueriesContext(_connection()) as captured:
        decision = limiter.hit(key, limit=3, window_seconds=60)
    assert len(_updates(captured.captured_queries)) == 1
    assert decision.allowed and decision.remaining == 0
    assert 0 < decision.reset_seconds <= 60
    newest = max(RateLimitHit.objects.filter(key=key).values_list("at_ms", flat=True))
    assert newest <= int(time.time() * 1000) + FUTURE_TOLERANCE_MS
    refused = limiter.hit(key, limit=3, window_seconds=60)
    assert not refused.allowed and 0 < refused.retry_after_seconds <= 60
