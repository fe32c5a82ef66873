"""Runs of one target wait for each other however their services' URLs spell the target (the runs here
never reach Locust: the run that waits is checked before it starts)."""

import pytest

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure
from tests.benchmarks.support import REQUESTS

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("running_url", "waiting_url"),
    [
        ("http://localhost", "http://LOCALHOST:80/other/"),  # the scheme's default port, written or not
        ("https://localhost:443/", "https://localhost"),
        ("http://[::1]:8000/", "http://[0:0:0:0:0:0:0:1]:8000/"),  # one IPv6 address, two spellings
    ],
)
def test_one_target_spelt_two_ways_is_one_target(running_url, waiting_url):
    first, _ = service_ensure(slug="first", name="First", base_url=running_url)
    second, _ = service_ensure(slug="second", name="Second", base_url=waiting_url)
    running = services.benchmark_run_create(plan=BenchmarkPlan.objects.create(name="a", service=first,
                                                                              requests=REQUESTS))  # fmt: skip
    BenchmarkRun.objects.filter(pk=running.pk).update(status=BenchmarkRun.Status.RUNNING)
    waiting = BenchmarkRun.objects.create(plan=BenchmarkPlan.objects.create(name="b", service=second,
                                                                            requests=REQUESTS))  # fmt: skip
    BenchmarkPlan.objects.update(scopes=["nope"])  # started anyway, a run fails at once (no token), loading nothing
    with pytest.raises(services.TargetBusy, match=f"#{running.pk}"):
        services.benchmark_run_execute(run_id=waiting.pk)
    waiting.refresh_from_db()
    assert waiting.status == BenchmarkRun.Status.PENDING and waiting.attempts == 0


def test_another_port_of_the_host_is_another_target():
    assert services._target("http://localhost:8000") != services._target("http://localhost:8001")
    assert services._target("http://localhost") != services._target("https://localhost")
