"""The service's knee is the one its last successful stress run recorded, whatever its plan's kind is now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.benchmarks.selectors import service_knee_rps
from apps.services.services import service_ensure
from tests.benchmarks.support import REQUESTS

pytestmark = pytest.mark.django_db


def _run(plan: BenchmarkPlan, findings: dict, hours_ago: int) -> BenchmarkRun:
    run = BenchmarkRun.objects.create(plan=plan, status=BenchmarkRun.Status.SUCCEEDED, findings=findings)
    BenchmarkRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=hours_ago))
    return run


def test_the_knee_is_read_from_the_stress_run_itself():
    service = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]
    plan = BenchmarkPlan.objects.create(name="p", service=service, requests=REQUESTS, kind="stress")
    _run(plan, {"stress": {"knee_rps": 120.0, "knee_users": 40}}, hours_ago=3)
    assert service_knee_rps(service) == 120.0

    plan.kind = BenchmarkPlan.Kind.LOAD  # edited since: its stress run still measured 120 req/s
    plan.save()
    assert service_knee_rps(service) == 120.0

    _run(plan, {"endurance": {"slope": 0.0}}, hours_ago=2)  # a load run of it: no knee
    plan.kind = BenchmarkPlan.Kind.STRESS
    plan.save()
    assert service_knee_rps(service) == 120.0

    _run(plan, {"stress": {"knee_rps": 90.0, "knee_users": 30}}, hours_ago=1)
    assert service_knee_rps(service) == 90.0
