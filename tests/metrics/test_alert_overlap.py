"""Two alert evaluations at once (a slow one overlapping the next beat, or two workers taking the task) page
once per change: real PostgreSQL, each evaluation on its own thread and connection, as two workers would be."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.metrics import services
from apps.metrics.models import Alert, AlertNotification, AlertRule
from apps.metrics.recorder import Recorder

pytestmark = pytest.mark.django_db(transaction=True)


def _evaluate_side_by_side(monkeypatch) -> None:
    """Two evaluations on their own threads, each reaching the resolution of an alert before the other stores
    it, if they can: one held back (by a lock) is waited for a few seconds only, then the other goes on alone."""
    original = services._resolve
    arrived, both_arrived, arrivals = [], threading.Event(), threading.Lock()

    def resolve_when_both_have_read(alert, **options):
        with arrivals:
            arrived.append(threading.current_thread().name)
            if len(arrived) == 2:
                both_arrived.set()
        both_arrived.wait(timeout=3)
        return original(alert, **options)

    monkeypatch.setattr(services, "_resolve", resolve_when_both_have_read)
    failures = []

    def evaluate():
        try:
            services.alerts_evaluate()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=evaluate, name=f"worker-{i}") for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not failures and not any(worker.is_alive() for worker in workers)


def test_a_recovered_alert_is_resolved_and_paged_once_by_overlapping_evaluations(monkeypatch):
    rule = AlertRule.objects.create(name="Overlap p95", metric="p95_ms", threshold=500, for_seconds=0,
                                    min_requests=1, email_to="oncall@example.org")  # fmt: skip
    firing = Alert.objects.create(rule=rule, value=900, last_value=900, message="p95 is 900")
    process = Recorder(flush_interval=3600)
    for _ in range(20):  # recovered: well under the threshold less its hysteresis
        process.record(route="api/v1/overlap/", method="GET", status=200, client="app", elapsed_us=100_000)
    process.flush()

    _evaluate_side_by_side(monkeypatch)

    firing.refresh_from_db()
    assert firing.state == Alert.State.RESOLVED
    assert AlertNotification.objects.filter(alert=firing, event="resolved").count() == 1


def test_a_disabled_rules_alert_is_resolved_and_paged_once_by_overlapping_evaluations(monkeypatch):
    rule = AlertRule.objects.create(name="Overlap disabled", metric="p95_ms", threshold=500, enabled=False,
                                    email_to="oncall@example.org")  # fmt: skip
    firing = Alert.objects.create(rule=rule, value=900, last_value=900, message="p95 is 900")
    _evaluate_side_by_side(monkeypatch)

    assert AlertNotification.objects.filter(alert=firing, event="resolved").count() == 1
