"""BENCHMARK_TOKEN_HOSTS named hosts only: with `127.0.0.1` allowed, a run's token (its plan's scopes, PHI
ones included) went to any port of it, a listener of anyone's on the machine. An entry may now give a port
(`127.0.0.1:8000`, `[::1]:8000`): that port only, the scheme's default when the URL has none. A bare host
still allows every port (a Service name where nothing else listens)."""

from __future__ import annotations

import pytest

from apps.accounts.models import ApiClient
from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, token_host_allowed
from apps.services.services import service_ensure


@pytest.mark.parametrize(
    ("base_url", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.0.0.1:8000/api/", True),
        ("http://127.0.0.1:9509", False),  # another port of the same host
        ("http://127.0.0.1", False),  # port 80
        ("http://[::1]:8000", True),
        ("http://[::1]:8001", False),
        ("http://controlplane-api", True),  # a bare host: any port
        ("http://controlplane-api:8080", True),
        ("https://api.example:443", True),
        ("https://api.example", True),  # https's default port
        ("http://api.example", False),  # port 80
        ("http://localhost:8000", False),  # not listed
    ],
)
def test_an_entry_with_a_port_allows_that_port_only(settings, base_url, allowed):
    settings.BENCHMARK_TOKEN_HOSTS = ["127.0.0.1:8000", "[::1]:8000", "controlplane-api", "API.example:443"]
    assert token_host_allowed(base_url) is allowed


@pytest.mark.django_db
def test_a_run_to_another_port_gets_no_token(settings):
    settings.BENCHMARK_TOKEN_HOSTS = ["127.0.0.1:8000"]
    service = service_ensure(slug="clinical-api", name="Clinical API", base_url="http://127.0.0.1:8000")[0]
    plan = BenchmarkPlan.objects.create(name="clinical load", service=service, scopes=["patient:read"],
                                        requests=[{"name": "card", "path": "/card", "weight": 1}])  # fmt: skip
    run = services.benchmark_run_create(plan=plan)
    service.base_url = "http://127.0.0.1:9509"  # a listener of someone's own
    service.save()
    run = services.benchmark_run_execute(run_id=run.pk)
    assert run.status == BenchmarkRun.Status.FAILED and "BENCHMARK_TOKEN_HOSTS" in run.error
    assert not ApiClient.objects.exists()  # no token was issued


@pytest.mark.parametrize(
    "entry", ["127.0.0.1:", "[::1]8000", "127.0.0.1:abc", "127.0.0.1:0", "127.0.0.1:70000", "[::1]:"]
)
def test_a_garbled_port_matches_nothing_rather_than_every_port(settings, entry):
    """`127.0.0.1:` and `[::1]8000` were read as a bare host: any port of it, a listener of anyone's."""
    settings.BENCHMARK_TOKEN_HOSTS = [entry]
    for url in ("http://127.0.0.1:9509", "http://[::1]:9509", "http://127.0.0.1:8000", "http://[::1]:8000"):
        assert token_host_allowed(url) is False
