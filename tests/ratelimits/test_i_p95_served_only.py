"""The adaptive controller's p95 is of the requests a service served: the fast refusals beside them (a service
shedding load with 503s, a flood of made-up tokens' 401s, 403s, 404s, the limiter's 429s) do not hide that the
served ones are slow (review c, finding 1)."""

from __future__ import annotations

import pytest

from apps.metrics.recorder import Recorder, status_class
from apps.ratelimits import tasks
from apps.ratelimits.models import RateLimitPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("refused", [503, 401, 403, 404, 429])
def test_fast_refusals_beside_slow_served_requests_still_tighten(refused):
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    policy = RateLimitPolicy.objects.create(scope="reports", requests=50, priority=5, adaptive=True,
                                            cpu_threshold_pct=100, service=service, p95_threshold_ms=2000)  # fmt: skip
    # Through the request recorder, as the middleware records them: 30 served in 3 s, 900 refused in 2 ms.
    process = Recorder(flush_interval=3600)
    for _ in range(30):
        process.record(route="api/triage/x/", method="POST", status=200, client="c", elapsed_us=3_000_000)
    for _ in range(900):
        process.record(route="api/triage/x/", method="POST", status=refused, client="c", elapsed_us=2_000)
    process.flush()

    tasks.adapt()

    steps = list(policy.adjustments.values_list("direction", "p95_ms"))
    assert len(steps) == 1, f"a {refused} flood hid the slow service from the controller: steps {steps}"
    direction, p95_ms = steps[0]
    assert direction == "tighten" and p95_ms > 2000


def test_a_load_shedding_503_has_a_class_of_its_own_and_other_5xx_are_served():
    assert [status_class(s) for s in (200, 302, 401, 429, 500, 503, 504)] == [
        "2xx", "3xx", "4xx", "429", "5xx", "503", "5xx",
    ]  # fmt: skip


def test_slow_served_failures_count_in_the_p95():
    """A 500 or a 504 came after the work (or a wait for it): as slow as the service is, it is a served request."""
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    policy = RateLimitPolicy.objects.create(scope="reports", requests=50, priority=5, adaptive=True,
                                            cpu_threshold_pct=100, service=service, p95_threshold_ms=2000)  # fmt: skip
    process = Recorder(flush_interval=3600)
    for status in (500, 504):
        for _ in range(15):
            process.record(route="api/triage/x/", method="POST", status=status, client="c", elapsed_us=3_000_000)
    for _ in range(100):
        process.record(route="api/triage/x/", method="POST", status=200, client="c", elapsed_us=2_000)
    process.flush()

    tasks.adapt()

    assert list(policy.adjustments.values_list("direction", flat=True)) == ["tighten"]
