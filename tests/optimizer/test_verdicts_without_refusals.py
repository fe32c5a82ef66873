"""The optimizer's response-time verdict reads the requests a service served: 2,000 refusals answered in
2 ms beside 60 requests served in 900 ms read as a 2 ms p95, a met target."""

import pytest

from apps.optimizer.services import service_verdicts
from apps.optimizer.types import Goals
from apps.services.models import Service
from tests.metrics.support import record_traffic

pytestmark = pytest.mark.django_db


def test_the_response_time_verdict_leaves_the_limiters_refusals_out(settings):
    settings.OPTIMIZER_SERVICE_MIN_REQUESTS = 10
    Service.objects.create(name="Vitals", slug="vitals", route_prefix="api/v1/vitals/", slo_p95_ms=500)
    record_traffic(900, count=60, status=200)
    record_traffic(2, count=2000, status=429)
    [verdict] = service_verdicts(Goals(service_slug="vitals"))
    assert verdict["measured"] == pytest.approx(900, rel=0.02)
    assert verdict["met"] is False
    assert "60 requests" in verdict["subject"]
