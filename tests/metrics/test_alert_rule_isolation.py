"""A rule whose evaluation hits a database error is rolled back alone (a savepoint each) and says why on
itself; the rules after it are still evaluated, inside a transaction as outside."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connection

from apps.metrics import selectors, services
from apps.metrics.models import AlertRule
from apps.metrics.recorder import Recorder

pytestmark = pytest.mark.django_db


def _slow_requests() -> None:
    process = Recorder(flush_interval=3600)
    for _ in range(5):
        process.record(route="api/v1/x/", method="GET", status=200, client="app", elapsed_us=50_000)
    process.flush()


def test_a_database_error_in_one_rule_does_not_abort_the_others_and_is_recorded_on_it():
    broken = AlertRule.objects.create(name="A broken", metric="p95_ms", threshold=1, min_requests=1, for_seconds=0)
    working = AlertRule.objects.create(name="B p95", metric="p95_ms", threshold=1, min_requests=1, for_seconds=0)
    _slow_requests()
    real_value = selectors.alert_rule_value

    def value(rule, *, now=None):
        if rule.pk == broken.pk:
            with connection.cursor() as cursor:  # a real error of the database, as a bad query would raise
                cursor.execute("SELECT 1 / 0")
        return real_value(rule, now=now)

    with mock.patch.object(selectors, "alert_rule_value", value):
        fired = services.alerts_evaluate()  # inside the test's transaction, as a caller's would be

    assert working in [alert.rule for alert in fired]
    broken.refresh_from_db()
    assert "division by zero" in broken.last_error and broken.last_error_at is not None
    assert broken.last_evaluated_at is None and not broken.alerts.exists()

    services.alerts_evaluate()  # evaluated again, and fine this time: the error is cleared
    broken.refresh_from_db()
    assert broken.last_error == "" and broken.last_error_at is None and broken.last_evaluated_at is not None


def test_the_admin_lists_a_rules_last_error(admin_client):
    AlertRule.objects.create(name="failing", metric="p95_ms", threshold=1, last_error="DataError: boom")
    assert "DataError: boom" in admin_client.get("/admin/metrics/alertrule/").content.decode()
