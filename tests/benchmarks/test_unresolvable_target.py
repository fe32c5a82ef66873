"""A target whose host name cannot be resolved fails its run at once, with the reason: Locust ran the plan's
whole length on connection errors (a day for an endurance plan) and recorded them as the service's."""

from __future__ import annotations

import pytest

from apps.accounts.models import ApiClient
from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


def test_a_run_of_an_unresolvable_host_fails_before_any_load(settings):
    host = "no-such-service.invalid"  # .invalid never resolves (RFC 6761)
    settings.BENCHMARK_TOKEN_HOSTS = [*settings.BENCHMARK_TOKEN_HOSTS, host]
    service, _ = service_ensure(slug="typo", name="Typo", base_url=f"http://{host}:8000")
    plan = BenchmarkPlan.objects.create(
        name="typo", service=service, duration_seconds=3600,
        requests=[{"name": "card", "method": "GET", "path": "/card", "weight": 1}],
    )  # fmt: skip
    run = services.benchmark_run_execute(run_id=services.benchmark_run_create(plan=plan).pk)
    assert run.status == BenchmarkRun.Status.FAILED
    assert f"'{host}' cannot be resolved" in run.error and "base URL" in run.error
    assert not ApiClient.objects.filter(name__startswith=f"benchmark-run-{run.pk}-").exists()  # no token issued
    assert run.summary == {} and run.endpoints == []  # nothing measured
