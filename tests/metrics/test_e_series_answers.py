"""The metrics series API refuses what it cannot answer rightly, rather than answer zeros or nulls: a counter
stored per hour read in finer steps, a cache namespace no policy names, the requests of a service with no route
prefix; and the failed loads of a hidden service's deployment are not counted for a caller who does not see that
service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.inference.models import ModelDeployment
from apps.metrics.models import MetricPoint
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


def _point(series: str, at: datetime, value: float, resolution: str = "raw") -> MetricPoint:
    return MetricPoint(series=series, resolution=resolution, at=at, sum=value, count=1, min=value, max=value)


def _series(api, metric: str, start: datetime, end: datetime, step: int, **more):
    return api.get("/api/v1/metrics/series/", {
        "metric": metric, "step": step, "start": start.isoformat(), "end": end.isoformat(), **more,
    })  # fmt: skip


def test_a_counter_stored_per_hour_refuses_a_finer_step(staff_api):
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40)
    MetricPoint.objects.bulk_create([_point("inference.load_failures.minilm.fp32", hour, 3.0, "1h")])
    response = _series(staff_api, "inference_load_failures", hour, hour + timedelta(hours=2), 600)
    assert response.status_code == 400, response.content  # the old answer: 3 in one step, then zeros
    assert "per hour" in response.json()["errors"]["step"][0]
    response = _series(staff_api, "inference_load_failures", hour, hour + timedelta(hours=2), 3600)
    assert response.status_code == 200
    assert [value for _, value in response.json()["points"]] == [3.0, 0.0]


def test_an_unknown_cache_namespace_is_a_400_not_nulls(staff_api):
    end = timezone.now()
    response = _series(staff_api, "cache_hit_rate_pct", end - timedelta(hours=1), end, 300, namespace="vital_sign")
    assert response.status_code == 400, response.content
    assert "vital_sign" in response.json()["errors"]["namespace"][0]
    response = _series(staff_api, "cache_hit_rate_pct", end - timedelta(hours=1), end, 300, namespace="vital_signs")
    assert response.status_code == 200


def test_the_requests_of_a_service_with_no_route_prefix_are_a_400_not_zeros(staff_api):
    service_create(name="Draft triage", slug="draft-triage")
    end = timezone.now()
    response = _series(staff_api, "rps", end - timedelta(hours=1), end, 300, service="draft-triage")
    assert response.status_code == 400, response.content
    assert "route prefix" in response.json()["errors"]["service"][0]


def test_the_failed_loads_of_a_hidden_services_deployment_are_not_counted(staff_api, admin_client):
    oncology = service_create(name="Oncology triage", slug="onco", route_prefix="api/v1/onco/")
    oncology.visible_to.add(Group.objects.create(name="Oncology AI"))
    ModelDeployment.objects.create(name="onco-model", source=ModelDeployment.Source.MINILM, task="embedding",
                                   service=oncology)  # fmt: skip
    ModelDeployment.objects.create(name="shared-model", source=ModelDeployment.Source.MINILM, task="embedding")
    minute = timezone.now().astimezone(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    start, end = minute, minute + timedelta(minutes=1)

    def total(api) -> float:
        response = _series(api, "inference_load_failures", start, end, 60)
        assert response.status_code == 200, response.content
        return sum(value for _, value in response.json()["points"])

    # What that minute already holds: a model load that failed in an earlier test's worker (its own process,
    # committed outside any test's transaction) is counted too; the fresh CI run failed three times on one.
    staff_before, admin_before = total(staff_api), total(admin_client)
    MetricPoint.objects.bulk_create([
        _point("inference.load_failures.onco-model.fp32", minute, 1.0),
        _point("inference.load_failures.onco-model.fp16", minute, 1.0),
        _point("inference.load_failures.shared-model.fp32", minute, 1.0),
    ])  # fmt: skip
    assert total(staff_api) - staff_before == 1.0  # the old answer: 3, the oncology deployment's two with it
    assert total(admin_client) - admin_before == 3.0
