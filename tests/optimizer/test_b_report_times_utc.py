"""The optimization report labels its times UTC, so they are UTC whatever the hospital's TIME_ZONE: Django's
`date` filter writes a time on the current zone's clock, and on a New York server 12:00 UTC read '08:00:00 UTC'."""

from datetime import UTC, datetime

import pytest
from django.test import override_settings

from apps.optimizer.models import OptimizationRun, Recommendation
from apps.optimizer.report import render_report

STARTED = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
FINISHED = datetime(2026, 7, 1, 12, 5, 30, tzinfo=UTC)
DECIDED = datetime(2026, 7, 1, 12, 6, 0, tzinfo=UTC)
SERVED = datetime(2026, 7, 1, 13, 15, 45, tzinfo=UTC)


def _run() -> OptimizationRun:
    run = OptimizationRun.objects.create(target="caching", status=OptimizationRun.Status.SUCCEEDED, inline=True)
    OptimizationRun.objects.filter(pk=run.pk).update(started_at=STARTED, finished_at=FINISHED)
    Recommendation.objects.create(
        run=run, step="caching", kind="cache_ttl", subject="clinical", title="Raise the TTL", reason="hit rate low",
        change={}, decided_via="admin", decided_at=DECIDED,
    )  # fmt: skip
    run.refresh_from_db()
    return run


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata", "UTC"])
def test_the_report_s_utc_times_are_utc_on_any_hospital_clock(zone):
    with override_settings(TIME_ZONE=zone):
        run = _run()
        stored = render_report(run)
        served = render_report(run, live_at=SERVED)
    assert "2026-07-01 12:00:00 UTC \u2013 12:05:30 UTC" in stored, stored
    assert "Status at the time of the run (2026-07-01 12:05:30 UTC)" in stored, stored
    assert "admin, 2026-07-01 12:06 UTC" in stored, stored
    assert "Status as of 2026-07-01 13:15:45 UTC" in served, served
