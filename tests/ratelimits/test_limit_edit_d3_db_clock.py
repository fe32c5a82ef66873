"""An admin edit of a policy's limit is stamped by the database, on its clock, as the request rollups' minutes the
overview reads it against are. Stamped with this host's clock (`auto_now_add`), an app server two hours behind the
database recorded the edit outside the overview's hour: the minutes before it were read against the new limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.ratelimits.models import RateLimitLimitChange, RateLimitPolicy
from tests.ratelimits.test_overview_limit_edits_d import CHANGE, _form, _requests, _usage

pytestmark = pytest.mark.django_db


def _database_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT STATEMENT_TIMESTAMP()")
        return cursor.fetchone()[0]


def test_an_edit_made_on_a_host_whose_clock_is_off_lands_in_the_database_minute(admin_client, monkeypatch):
    _requests("audit_logs", client="compliance-export", count=20, minutes_ago=10)  # under the 30 then in force
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    real_now = timezone.now
    with monkeypatch.context() as patched:
        patched.setattr(timezone, "now", lambda: real_now() - timedelta(hours=2))  # this host two hours behind
        response = admin_client.post(CHANGE.format(policy.pk), _form(policy, requests=3))
        assert response.status_code == 302
    (change,) = RateLimitLimitChange.objects.all()
    assert (change.old_requests, change.new_requests) == (30, 3)
    # Before: stamped two hours back (this host's clock).
    assert abs(change.at - _database_now()) < timedelta(minutes=1)

    usage = _usage(admin_client, "audit_logs")
    # Before: the edit fell outside the hour read, and the 20 sent under 30 read as over the new 3 (share 6.67).
    assert usage["busiest_client_limit_per_minute"] == 30
    assert usage["busiest_client_share"] == pytest.approx(0.6667)


def test_a_change_created_in_code_is_stamped_too():
    """Not only the admin's: a row created with no `at` gets the database's time, returned to the instance."""
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    change = RateLimitLimitChange.objects.create(policy=policy, old_requests=30, new_requests=3,
                                                 old_period_seconds=60, new_period_seconds=60)  # fmt: skip
    assert abs(change.at - _database_now()) < timedelta(minutes=1)
    assert RateLimitLimitChange.objects.get(pk=change.pk).at == change.at
