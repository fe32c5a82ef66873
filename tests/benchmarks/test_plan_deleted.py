"""Deleting a plan stops its running load: the run's row went with the plan, and its worker, which looked
only for a cancellation on that row, went on loading the target to the run's deadline (a day for an
endurance plan) with nothing left to record it in. A real Locust against the tests' own server."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from apps.accounts.models import ApiClient
from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_deleting_a_plan_stops_its_running_load(sleepy):
    service, _ = service_ensure(slug="sleepy", name="Sleepy service", base_url=sleepy.url)
    plan = BenchmarkPlan.objects.create(
        name="long load", service=service, users=2, spawn_rate=2, duration_seconds=3600,
        requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip
    run = services.benchmark_run_create(plan=plan)
    outcome: dict[str, object] = {}

    def worker() -> None:
        try:
            outcome["run"] = services.benchmark_run_execute(run_id=run.pk)
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    wait_for(lambda: sleepy.served > 10, 120, "the run's load to reach the target")
    plan.delete()
    thread.join(timeout=180)  # the run's own length is an hour
    assert not thread.is_alive(), "the load went on after its plan was deleted"
    assert "error" not in outcome, repr(outcome.get("error"))
    assert not BenchmarkRun.objects.filter(pk=run.pk).exists()
    tokens = ApiClient.objects.filter(name__startswith=f"benchmark-run-{run.pk}-")
    assert tokens.exists() and all(token.revoked_at for token in tokens)
