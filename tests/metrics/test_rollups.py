"""Request timing: traffic against the API lands in per-minute rollups by route template, never raw paths."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.metrics.models import RequestRollup
from apps.metrics.recorder import Recorder, recorder
from apps.metrics.selectors import route_latency, service_p95_ms
from apps.services.models import Service

pytestmark = pytest.mark.django_db


def test_requests_are_rolled_up_by_route_template_and_client(api, issue_token):
    token = issue_token("patient:read", name="ward-tablet")
    recorder.flush()
    RequestRollup.objects.all().delete()
    for patient_id in (101, 202, 303):
        api.get(f"/api/v1/patients/{patient_id}/", HTTP_AUTHORIZATION=f"Bearer {token}")
    api.get("/healthz")
    recorder.flush()
    row = RequestRollup.objects.get(route__startswith="api/v1/patients/<")
    assert row.count == 3 and row.status_class == "4xx" and row.client == "ward-tablet" and row.method == "GET"
    assert "101" not in row.route and 0 < row.p50_ms <= row.p95_ms <= row.p99_ms <= row.max_ms
    assert RequestRollup.objects.filter(route="healthz", client="anonymous").exists()


def test_rollups_from_several_processes_merge_into_exact_percentiles():
    processes = [Recorder(flush_interval=3600) for _ in range(3)]
    for n, process in enumerate(processes):
        for ms in range(1, 101):  # 1..100 ms in each process
            process.record(
                route="api/x/", method="GET", status=200 if ms < 100 else 503, client="c", elapsed_us=ms * 1000 + n
            )
        process.flush()
    summary = route_latency(route_prefixes=["api/x/"])
    assert summary["count"] == 300 and summary["errors"] == 3
    assert summary["p50_ms"] == pytest.approx(50, rel=0.02)
    assert summary["p95_ms"] == pytest.approx(95, rel=0.02)


def test_a_service_p95_comes_from_the_routes_under_its_prefix():
    service = Service.objects.create(name="Vitals API", slug="vitals", route_prefix="api/v1/vitals/")
    process = Recorder(flush_interval=3600)
    for ms in (10, 20, 30, 2000):
        process.record(route="api/v1/vitals/<id>/", method="GET", status=200, client="c", elapsed_us=ms * 1000)
    process.record(route="api/v1/other/", method="GET", status=200, client="c", elapsed_us=9_000_000)
    process.flush()
    assert service_p95_ms(since=timezone.now() - timedelta(minutes=5))[service.pk] == pytest.approx(2000, rel=0.02)


def test_percentile_values_equal_hdrhs_own():
    """Our one-pass percentiles must be hdrh's values exactly, for our histograms and the benchmarks'."""
    import random

    from hdrh.histogram import HdrHistogram

    from apps.metrics.recorder import new_histogram, percentile_values

    rng = random.Random(7)  # noqa: S311 - reproducible test data, not a secret
    percentiles = (0, 1, 50, 90, 95, 99, 99.9, 100)
    for make in (new_histogram, lambda: HdrHistogram(1, 600_000_000, 3)):
        empty = make()
        assert percentile_values(empty, percentiles) == {p: empty.get_value_at_percentile(p) for p in percentiles}
        for size in (1, 2, 7, 100, 5_000):
            histogram = make()
            for _ in range(size):
                histogram.record_value(int(rng.lognormvariate(9, 1.5)) + 1, rng.choice((1, 1, 3)))
            for candidate in (histogram, HdrHistogram.decode(histogram.encode())):
                expected = {p: candidate.get_value_at_percentile(p) for p in percentiles}
                assert percentile_values(candidate, percentiles) == expected, size


def test_a_route_is_the_service_with_the_longest_prefix_it_matches():
    """A service on `api/v1/` is not credited with the traffic of one on `api/v1/patients/`: that one may be
    hidden from the first's viewers, and its requests are its own SLO's, not both services'."""
    from apps.metrics.selectors import live_snapshot

    platform = Service.objects.create(name="Platform", slug="platform", route_prefix="api/v1/")
    patients = Service.objects.create(name="Patients", slug="patients", route_prefix="api/v1/patients/")
    process = Recorder(flush_interval=3600)
    for _ in range(3):
        process.record(route="api/v1/patients/<id>/", method="GET", status=200, client="c", elapsed_us=900_000)
    process.record(route="api/v1/whoami/", method="GET", status=200, client="c", elapsed_us=5_000)
    process.flush()
    assert route_latency(route_prefixes=["api/v1/"])["count"] == 1
    assert route_latency(route_prefixes=["api/v1/patients/"])["count"] == 3
    assert route_latency(route_prefixes=["api/v1/", "api/v1/patients/"])["count"] == 4
    assert service_p95_ms(since=timezone.now() - timedelta(minutes=5))[platform.pk] == pytest.approx(5, rel=0.02)
    assert service_p95_ms(since=timezone.now() - timedelta(minutes=5))[patients.pk] == pytest.approx(900, rel=0.02)
    # A viewer who sees only the platform: neither its row nor "all your services" holds the patients' reads.
    snapshot = live_snapshot(visible_services=frozenset({platform.pk}))
    assert [row["service"] for row in snapshot["services"]] == ["platform"]
    assert snapshot["overall"]["rps"] == snapshot["services"][0]["rps"]
    # Deactivated, the patients' service still owns its routes: they do not fall to the wider service.
    Service.objects.filter(pk=patients.pk).update(is_active=False)
    assert route_latency(route_prefixes=["api/v1/"])["count"] == 1


def test_a_prometheus_export_that_fails_does_not_cost_the_rollups(monkeypatch):
    """The multiprocess files unwritable (a full disk: mocked, as a full disk cannot be made here) dropped the
    whole flush, the database's rollups with it: the dashboard, SLOs and alerts went blind with Prometheus."""
    from apps.metrics import prometheus

    def disk_full(**_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(prometheus, "request_histogram_add", disk_full)
    process = Recorder(flush_interval=3600)
    for _ in range(3):
        process.record(route="api/v1/export-fails/", method="GET", status=200, client="c", elapsed_us=5_000)
    process.flush()
    assert RequestRollup.objects.get(route="api/v1/export-fails/").count == 3


def test_a_flush_that_fails_midway_adds_no_series_twice_when_retried(monkeypatch):
    """The database dropped after some of a flush's series were written (each its own transaction): the
    recorder kept every series for its retry, and the ones already written were counted twice (mocked: the
    third row's write raises OperationalError, as a dropped connection does)."""
    from django.db import OperationalError

    from apps.core.breaker import metrics_database_breaker
    from apps.metrics import services

    original, summarized = services._summarize, []

    def connection_drops_at_the_third_row(row, histogram):
        summarized.append(row.route)
        if len(summarized) == 3:
            raise OperationalError("server closed the connection unexpectedly")
        return original(row, histogram)

    process = Recorder(flush_interval=3600)
    routes = [f"api/v1/midway-{n}/" for n in range(5)]
    for route in routes:
        for _ in range(2):
            process.record(route=route, method="GET", status=200, client="c", elapsed_us=5_000)
    monkeypatch.setattr(services, "_summarize", connection_drops_at_the_third_row)
    assert process.flush() == 2  # the two before the drop; the other three kept for the next flush
    monkeypatch.undo()
    metrics_database_breaker.reset()  # the database is back
    assert process.flush() == 3

    counts = dict(RequestRollup.objects.filter(route__in=routes).values_list("route", "count"))
    assert counts == dict.fromkeys(routes, 2)


def test_a_flush_answers_the_number_of_series_it_wrote():
    """rollups_merge takes each series out of the batch as it writes it, and the recorder answered the
    batch's length after the merge: 0 for every flush, a refused one and a written one alike."""
    from apps.core.breaker import metrics_database_breaker

    process = Recorder(flush_interval=3600)
    for route in ("api/v1/counted-a/", "api/v1/counted-b/"):
        process.record(route=route, method="GET", status=200, client="c", elapsed_us=5_000)
    process.record(route="api/v1/counted-a/", method="GET", status=503, client="c", elapsed_us=5_000)
    assert process.flush() == 3  # two routes, one of them in two status classes
    assert process.flush() == 0  # nothing new

    process.record(route="api/v1/counted-a/", method="GET", status=200, client="c", elapsed_us=5_000)
    metrics_database_breaker.failure()  # refused while the breaker is open: kept, none written
    try:
        assert process.flush() == 0
    finally:
        metrics_database_breaker.reset()
    assert process.flush() == 1
