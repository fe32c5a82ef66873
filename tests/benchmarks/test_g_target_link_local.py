"""A benchmark's load never goes to a link-local or cloud metadata address: the target is resolved and
checked before each run, and every connection Locust makes is checked where it is made (a name rebound to
the metadata service mid-run). Resolution is monkeypatched: no name of the tests' resolves for real."""

import csv
import socket

import pytest
import requests

from apps.benchmarks import connect_guard, runner, services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure
from tests.benchmarks.support import REQUESTS


def _resolving(monkeypatch, names: dict[str, str]) -> None:
    """socket.getaddrinfo answering `names` (host: IPv4 address); any other host as before."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (names[host], port or 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.django_db
def test_a_target_resolving_to_the_metadata_service_is_failed_before_any_load(monkeypatch, settings):
    settings.BENCHMARK_TOKEN_HOSTS = [*settings.BENCHMARK_TOKEN_HOSTS, "scoring.hospital.example"]
    service, _ = service_ensure(slug="scoring", name="Scoring", base_url="http://scoring.hospital.example:8080")
    plan = BenchmarkPlan.objects.create(name="scoring load", service=service, requests=REQUESTS)
    run = services.benchmark_run_create(plan=plan)
    started = []
    monkeypatch.setattr(runner, "run_locust", lambda **kwargs: started.append(kwargs))
    _resolving(monkeypatch, {"scoring.hospital.example": "169.254.169.254"})
    run = services.benchmark_run_execute(run_id=run.pk)
    assert run.status == BenchmarkRun.Status.FAILED
    assert "TargetRefused" in run.error and "169.254.169.254" in run.error
    assert started == []


def test_each_connection_is_checked_where_it_is_made(monkeypatch, sleepy):
    port = int(sleepy.url.rsplit(":", 1)[1])
    _resolving(monkeypatch, {"rebound.hospital.example": "169.254.169.254", "ward.hospital.example": "127.0.0.1"})
    undo = connect_guard.install()
    try:
        session = requests.Session()
        session.trust_env = False  # no proxy: the connection is made here
        with pytest.raises(requests.ConnectionError, match=r"Refused to connect to rebound\.hospital\.example"):
            session.get(f"http://rebound.hospital.example:{port}/card", timeout=30)
        assert session.get(f"http://ward.hospital.example:{port}/card", timeout=30).status_code == 200
    finally:
        undo()


@pytest.mark.slow
def test_locusts_requests_to_a_metadata_address_are_refused_and_failed(tmp_path):
    outcome = runner.run_locust(
        base_url="http://169.254.169.254:9", requests=REQUESTS, token="t", patients=[], stages=[[3, 1, 1]],
        stress_gate=None, rate_per_user=None, should_stop=lambda: False, on_tick=lambda *_: None, workdir=tmp_path,
    )  # fmt: skip
    assert outcome.totals.requests > 0 and outcome.totals.errors == outcome.totals.requests
    with (tmp_path / "run_failures.csv").open() as failures:
        errors = [row["Error"] for row in csv.DictReader(failures)]
    assert errors and all("Refused to connect to 169.254.169.254" in error for error in errors), errors
