"""The SLO status judges a service's p95 from as many requests as `manage.py optimize` does
(OPTIMIZER_SERVICE_MIN_REQUESTS): the Overview read "missed · p95 107479.0 ms" on 2 requests (a cold start)
that the optimizer reported as not measured, and judged 16 requests that it did not."""

from __future__ import annotations

import pytest

from apps.metrics import selectors
from apps.metrics.recorder import Recorder
from apps.optimizer.services import service_verdicts
from apps.optimizer.types import Goals
from apps.services.models import Service

pytestmark = pytest.mark.django_db


def _traffic(count: int, elapsed_us: int) -> None:
    process = Recorder(flush_interval=3600)
    for _ in range(count):
        process.record(route="api/v1/embeddings/<id>/", method="POST", status=200, client="app", elapsed_us=elapsed_us)
    process.flush()


def _both(service: Service) -> tuple[dict, dict]:
    [verdict] = service_verdicts(Goals(service_slug=service.slug))
    return selectors.slo_status(service), verdict


@pytest.fixture
def service() -> Service:
    return Service.objects.create(name="Embeddings", slug="embeddings", route_prefix="api/v1/embeddings/",
                                  slo_p95_ms=500)  # fmt: skip


@pytest.mark.parametrize("count", [2, 16])
def test_too_few_requests_are_judged_by_neither(service, count):
    _traffic(count, elapsed_us=107_479_000)
    status, verdict = _both(service)
    hour = status["windows"]["1h"]
    assert verdict["measured"] is None and verdict["met"] is None
    assert hour["count"] == count and hour["p95_ms"] > 100_000  # the figure is shown, not judged
    assert hour["latency_judged"] is False and hour["p95_met"] is None and hour["p99_met"] is None
    assert status["min_requests"] == 20
    assert hour["error_rate_met"] is True  # errors are counted from the first request


def test_enough_requests_are_judged_by_both(service):
    _traffic(20, elapsed_us=107_479_000)
    status, verdict = _both(service)
    hour = status["windows"]["1h"]
    assert verdict["met"] is False
    assert hour["latency_judged"] is True and hour["p95_met"] is False


def test_the_minimum_is_one_setting_for_both(service, settings):
    settings.OPTIMIZER_SERVICE_MIN_REQUESTS = 2
    _traffic(2, elapsed_us=1_000)
    status, verdict = _both(service)
    assert verdict["met"] is True
    assert status["min_requests"] == 2 and status["windows"]["1h"]["p95_met"] is True


def test_the_slo_api_says_the_minimum(staff_api, service):
    _traffic(2, elapsed_us=107_479_000)
    [result] = staff_api.get("/api/v1/metrics/slo/").json()["results"]
    assert result["min_requests"] == 20
    assert result["windows"]["1h"]["latency_judged"] is False and result["windows"]["1h"]["p95_met"] is None
