"""Alerts fire and resolve against a real webhook receiver on loopback; SLOs, series, retention, /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.metrics import selectors, services
from apps.metrics.models import Alert, AlertRule, MetricPoint, RequestRollup
from apps.metrics.recorder import Recorder
from apps.services.models import Service
from tests.metrics.support import alerts_evaluate_committed, host_sample

pytestmark = pytest.mark.django_db


def _traffic(latency_ms: float, *, count: int = 50, status: int = 200, route: str = "api/v1/patients/<id:pk>/"):
    process = Recorder(flush_interval=3600)
    for _ in range(count):
        process.record(route=route, method="GET", status=status, client="app", elapsed_us=int(latency_ms * 1000))
    process.flush()


def test_an_alert_fires_after_its_duration_and_resolves_with_hysteresis(webhook_receiver):
    url, received = webhook_receiver
    service = Service.objects.create(name="Patient API", slug="patients", route_prefix="api/v1/patients/")
    rule = AlertRule.objects.create(
        name="Patient p95", metric="p95_ms", threshold=500, service=service, for_seconds=60, hysteresis_pct=10,
        webhook_url=url, email_to="oncall@example.org",
    )  # fmt: skip
    start = timezone.now()
    _traffic(900)
    assert alerts_evaluate_committed(now=start) == []  # breaching, but not yet for 60 s
    rule.refresh_from_db()
    assert rule.pending_since == start
    [fired] = alerts_evaluate_committed(now=start + timedelta(seconds=61))
    assert fired.state == "firing" and fired.value == pytest.approx(900, rel=0.02)
    assert received[0]["event"] == "firing" and received[0]["rule"] == "Patient p95"
    assert mail.outbox[0].subject.startswith("[warning] firing")

    RequestRollup.objects.all().delete()
    _traffic(480)  # under the threshold, but inside the 10% hysteresis band: stays firing
    assert alerts_evaluate_committed(now=start + timedelta(seconds=120)) == []
    fired.refresh_from_db()  # ... at the value it has now (the alert list showed 900 until it resolved)
    assert fired.state == "firing" and fired.last_value == pytest.approx(480, rel=0.02)
    RequestRollup.objects.all().delete()
    _traffic(200)
    [resolved] = alerts_evaluate_committed(now=start + timedelta(seconds=180))
    assert resolved.state == "resolved" and resolved.resolved_at is not None
    assert [r["event"] for r in received] == ["firing", "resolved"]
    assert {n.channel for n in resolved.notifications.all()} == {"webhook", "email"}
    assert all(n.delivered for n in resolved.notifications.all())


def test_too_little_traffic_neither_fires_nor_resolves():
    AlertRule.objects.create(name="Errors", metric="error_rate_pct", threshold=5, for_seconds=0, min_requests=20)
    _traffic(10, count=5, status=500)
    assert alerts_evaluate_committed() == []
    assert not Alert.objects.filter(rule__name="Errors").exists()


def test_an_unreachable_webhook_is_recorded_not_raised():
    from tests.helpers import closed_port

    AlertRule.objects.create(
        name="CPU", metric="cpu_pct", threshold=1, for_seconds=0, webhook_url=f"http://127.0.0.1:{closed_port()}/x"
    )
    host_sample(cpu=90.0)
    [alert] = alerts_evaluate_committed()
    [notification] = alert.notifications.all()
    assert not notification.delivered and notification.detail


def test_slo_status_reports_the_error_budget_left():
    service = Service.objects.create(name="Vitals", slug="vitals", route_prefix="api/v1/vitals/", slo_error_rate_pct=5)
    _traffic(100, count=98, route="api/v1/vitals/<id>/")
    _traffic(100, count=2, status=503, route="api/v1/vitals/<id>/")
    status = selectors.slo_status(service)
    hour = status["windows"]["1h"]
    assert hour["count"] == 100 and hour["error_rate_pct"] == 2.0
    assert hour["error_budget_remaining"] == pytest.approx(0.6)  # 2 of 5 allowed errors spent
    assert hour["p95_met"] is True and hour["error_rate_met"] is True


def test_series_api_for_staff(staff_api):
    Service.objects.create(name="Patient API", slug="patients", route_prefix="api/v1/patients/")
    _traffic(40)
    response = staff_api.get("/api/v1/metrics/series/", {"metric": "p95_ms", "service": "patients", "step": 300})
    assert response.status_code == 200
    values = [value for _, value in response.json()["points"] if value is not None]
    assert values and values[-1] == pytest.approx(40, rel=0.02)
    assert staff_api.get("/api/v1/metrics/series/", {"metric": "nope"}).status_code == 400
    assert (
        staff_api.get(
            "/api/v1/metrics/series/", {"metric": "rps", "step": 10, "start": "2020-01-01T00:00Z"}
        ).status_code
        == 400
    )
    for edge in ({"end": "0001-01-01T00:10:00Z"}, {"start": "9999-12-31T22:00Z", "end": "9999-12-31T23:59:59Z"}):
        response = staff_api.get("/api/v1/metrics/series/", {"metric": "rps", **edge})
        assert response.status_code == 400 and set(response.json()["errors"]) <= {"start", "end"}
    assert staff_api.get("/api/v1/metrics/slo/").json()["results"][0]["service"] == "patients"
    assert staff_api.get("/api/v1/metrics/alerts/", {"state": "firing"}).json() == {"results": []}


def _rollup(minute: datetime, latency_ms: float, count: int, errors: int, route: str) -> RequestRollup:
    from apps.metrics.recorder import new_histogram

    histogram = new_histogram()
    histogram.record_value(int(latency_ms * 1000), count)
    return RequestRollup(minute=minute, route=route, method="GET", status_class="200", client="app", count=count,
                         errors=errors, total_ms=latency_ms * count, max_ms=latency_ms,
                         histogram=histogram.encode())  # fmt: skip


@pytest.mark.parametrize("step", [30, 60, 300, 420])
def test_a_series_is_one_query_and_equals_each_steps_own_figures(step, django_assert_max_num_queries):
    """The oracle: each step's figure computed on its own window, as the series did with a query per step."""
    since = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    until = since + timedelta(minutes=37, seconds=30)
    RequestRollup.objects.bulk_create(
        _rollup(since + timedelta(minutes=m), 10 + 7 * m, 5 + m, m % 3, route)
        for m in range(40) if m % 5 != 3  # gaps: steps with no traffic
        for route in ("api/v1/patients/<id>/", "fhir/Patient/<id>")
    )  # fmt: skip
    MetricPoint.objects.bulk_create(
        MetricPoint(series=series, at=since + timedelta(seconds=50 * i), sum=value, count=1, min=value, max=value)
        for i in range(45)
        for series, value in (("host.cpu_pct", 20 + i), ("cache.vital_signs.requests", 10 + i),
                              ("cache.vital_signs.loads", i % 4), ("cache.patient_data.requests", 3))
    )  # fmt: skip
    for metric in ("p50_ms", "p95_ms", "p99_ms", "rps", "requests", "error_rate_pct", "cache_hit_rate_pct",
                   "cpu_pct"):  # fmt: skip
        for prefixes in (None, ["api/v1/"]):
            # a host figure reads the monitor's per-host samples, and the series for the steps they lack
            with django_assert_max_num_queries(2 if metric == "cpu_pct" else 1):
                series = selectors.time_series(metric=metric, since=since, until=until, step_seconds=step,
                                               route_prefixes=prefixes)  # fmt: skip
            expected = []
            start = since
            while start < until:
                end = min(start + timedelta(seconds=step), until)
                if metric == "cache_hit_rate_pct":
                    rate = selectors.cache_hit_rate(since=start, until=end)
                    value = None if rate is None else 100 * rate
                elif metric == "cpu_pct":
                    value = selectors.host_gauge("cpu_pct", since=start, until=end)
                else:
                    latency = selectors.route_latency(route_prefixes=prefixes, since=start, until=end)
                    value = {"rps": latency["count"] / (end - start).total_seconds(), "requests": latency["count"],
                             "error_rate_pct": 100 * latency["errors"] / latency["count"] if latency["count"] else None,
                             }.get(metric, latency.get(metric))  # fmt: skip
                expected.append((start, None if value is None else round(value, 3)))
                start = end
            assert series == expected, (metric, prefixes)


def test_the_metrics_api_is_for_staff_only(api, issue_token):
    token = issue_token("patient:read")
    assert api.get("/api/v1/metrics/slo/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 403


def test_downsampling_keeps_totals_and_merges_histograms_exactly():
    old = (timezone.now() - timedelta(days=3)).replace(second=0, microsecond=0)
    for n in range(120):  # two hours of 30-second CPU samples and per-minute request counts
        MetricPoint.objects.create(series="host.cpu_pct", at=old + timedelta(seconds=30 * n), sum=n % 7, count=1,
                                   min=n % 7, max=n % 7)  # fmt: skip
    services.metric_points_downsample(
        source="raw", target="1m", older_than=timedelta(hours=48), size=timedelta(minutes=1)
    )
    minutes = MetricPoint.objects.filter(series="host.cpu_pct", resolution="1m")
    assert minutes.count() == 60 and sum(p.count for p in minutes) == 120
    assert sum(p.sum for p in minutes) == sum(n % 7 for n in range(120))

    long_ago = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    for minute in range(3):
        process = Recorder(flush_interval=3600)
        for ms in (10, 20, 30):
            process.record(route="api/x/", method="GET", status=200, client="c", elapsed_us=ms * 1000)
        process.flush()
        RequestRollup.objects.filter(resolution="1m", minute__gte=timezone.now() - timedelta(hours=1)).update(
            minute=long_ago + timedelta(minutes=minute)
        )
    services.request_rollups_downsample(older_than=timedelta(days=30))
    [hour] = RequestRollup.objects.filter(route="api/x/")
    assert hour.resolution == "1h" and hour.count == 9 and hour.max_ms == pytest.approx(30, rel=0.02)
    assert selectors.route_latency(route_prefixes=["api/x/"])["count"] == 9


def test_prometheus_exposition_has_request_and_cache_figures(client):
    from apps.metrics.recorder import recorder

    client.get("/healthz")
    recorder.flush()  # timings reach the Prometheus histograms when they are flushed
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'cp_http_request_duration_seconds_count{method="GET",route="healthz",status_class="2xx"}' in body
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


def test_the_live_snapshot_has_services_host_and_alerts():
    Service.objects.create(name="Patient API", slug="patients", route_prefix="api/v1/patients/")
    _traffic(30, count=60)
    snapshot = selectors.live_snapshot()
    [row] = snapshot["services"]
    assert row["service"] == "patients" and row["rps"] > 0 and row["p95_ms"] == pytest.approx(30, rel=0.02)
    assert snapshot["overall"]["rps"] >= row["rps"]
    assert snapshot["alerts"] == []


def test_api_traffic_reaches_rollups_metrics_snapshot_and_slo(client, api, issue_token):
    from apps.metrics.recorder import recorder

    service = Service.objects.create(name="Patient API", slug="patient-api", route_prefix="api/v1/patients/")
    token = issue_token("patient:read")
    recorder.flush()
    for patient_id in range(1, 13):
        api.get(f"/api/v1/patients/{patient_id}/", HTTP_AUTHORIZATION=f"Bearer {token}")
    recorder.flush()
    assert selectors.slo_status(service)["windows"]["1h"]["count"] == 12
    [row] = selectors.live_snapshot()["services"]
    assert row["service"] == "patient-api" and row["rps"] > 0
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'route="api/v1/patients/<id:patient_id>/"' in body and "/patients/1/" not in body


def test_a_gap_in_the_data_restarts_the_for_duration():
    rule = AlertRule.objects.create(name="Slow", metric="p95_ms", threshold=100, for_seconds=60, min_requests=5)
    start = timezone.now()
    _traffic(500, count=10)
    alerts_evaluate_committed(now=start)
    RequestRollup.objects.all().delete()
    alerts_evaluate_committed(now=start + timedelta(seconds=30))  # no data: the breach does not carry over
    rule.refresh_from_db()
    assert rule.pending_since is None
    _traffic(500, count=10)
    assert alerts_evaluate_committed(now=start + timedelta(seconds=90)) == []  # breaching again, but only now


def test_prometheus_has_each_hosts_latest_sample_labelled(client):
    """The monitor lands on any worker: the latest sample of any host made cp_host_cpu_pct jump between pods."""
    now = timezone.now()
    host_sample(host="worker-a", cpu=95.0, at=now - timedelta(seconds=30))
    host_sample(host="worker-a", cpu=91.0, at=now - timedelta(seconds=60))
    host_sample(host="worker-b", cpu=12.0, at=now)
    host_sample(host="worker-gone", cpu=50.0, at=now - timedelta(minutes=10))
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    cpu = sorted(line for line in body.splitlines() if line.startswith("cp_host_cpu_pct{"))
    assert cpu == ['cp_host_cpu_pct{host="worker-a"} 95.0', 'cp_host_cpu_pct{host="worker-b"} 12.0']


@pytest.mark.parametrize(
    ("allowed", "remote", "status"),
    [
        (["10.0.0.0/8"], "10.42.7.19", 200),  # the pod network: Prometheus' address changes with its pod
        (["10.0.0.0/8"], "11.0.0.1", 403),
        (["127.0.0.1", "::1"], "::ffff:127.0.0.1", 200),  # gunicorn on [::] sees a loopback IPv4 client so
        (["127.0.0.1", "::1"], "::ffff:10.0.0.1", 403),
        (["not-an-address", "192.168.1.5"], "192.168.1.5", 200),  # a typo leaves the other entries working
        (["127.0.0.1"], "", 403),
    ],
)
def test_metrics_allowed_addresses_may_be_networks(client, settings, allowed, remote, status):
    settings.METRICS_ALLOWED_IPS = allowed
    assert client.get("/metrics", REMOTE_ADDR=remote).status_code == status


def test_the_live_snapshot_shows_the_busiest_hosts_figures():
    """The newest sample of any host showed whichever pod the monitor last ran on: a saturated worker only
    half the time."""
    now = timezone.now()
    host_sample(host="worker-a", cpu=96.0, memory=40.0, at=now - timedelta(seconds=20))
    host_sample(host="worker-b", cpu=8.0, memory=88.0, at=now - timedelta(seconds=5))
    host_sample(host="worker-gone", cpu=100.0, memory=100.0, at=now - timedelta(minutes=20))
    assert selectors.live_snapshot(now=now)["host"] == {"cpu_pct": 96.0, "memory_pct": 88.0, "pool_pct": None}


def test_metrics_still_answer_with_the_request_figures_when_the_database_is_away(client, monkeypatch):
    """The database cannot be taken away in the middle of a test here: its first read in the scrape raises
    what psycopg raises for a server gone (the rest is real)."""
    from django.db import OperationalError

    from apps.caching import selectors as caching_selectors
    from apps.metrics.recorder import recorder

    client.get("/healthz")
    recorder.flush()

    from apps.core.breaker import metrics_database_breaker

    attempts = []

    def gone(**kwargs):
        attempts.append(1)
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    monkeypatch.setattr(caching_selectors, "cache_stats", gone)
    monkeypatch.setattr(metrics_database_breaker, "_start_probe", lambda: None)  # the probe would find it up
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'cp_http_request_duration_seconds_count{method="GET",route="healthz",status_class="2xx"}' in body
    assert "cp_database_figures_up 0.0" in body and "cp_cache_hits" not in body
    # The next scrapes do not try the database again (each would wait out the pool's timeout, 10 s, past
    # Prometheus's scrape timeout) until the breaker's background probe finds it back.
    assert "cp_database_figures_up 0.0" in client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert attempts == [1]
    monkeypatch.undo()
    metrics_database_breaker.success()  # what the probe does when the database answers
    assert "cp_database_figures_up 1.0" in client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()


def test_request_rollups_wait_for_no_database_that_just_failed(monkeypatch):
    """Rollups are flushed on a request's thread: with the database away, each flush waited out the pool's
    timeout. After one failure the flushes keep the minutes in memory until the breaker closes."""
    from django.db import OperationalError

    from apps.core.breaker import metrics_database_breaker
    from apps.metrics import services
    from apps.metrics.recorder import Recorder

    attempts = []

    def gone(series):
        attempts.append(len(series))
        raise OperationalError("connection refused")

    monkeypatch.setattr(services, "rollups_merge", gone)
    monkeypatch.setattr(metrics_database_breaker, "_start_probe", lambda: None)
    recorder = Recorder(flush_interval=3600)
    for _ in range(2):
        recorder.record(route="healthz", method="GET", status=200, client="app", elapsed_us=900)
        recorder.flush()
    assert attempts == [1]  # the second flush did not try
    assert sum(series.count for series in recorder._unsaved.values()) == 2  # both minutes' requests kept


def test_a_one_minute_window_reads_the_minute_it_reaches_into():
    """Evaluated at 10:05:10, a 1-minute window reaches back to 10:04:10: the rollup of 10:04 (its requests
    stamped with the minute's start) was left out, and the rule read only the ten seconds of 10:05, no data."""
    AlertRule.objects.all().delete()
    rule = AlertRule.objects.create(name="p95 1 min", metric="p95_ms", threshold=500, window_minutes=1,
                                    for_seconds=0, min_requests=20)  # fmt: skip
    minute = datetime(2026, 3, 2, 10, 4, tzinfo=UTC)
    _rollup(minute, 900, 40, 0, "api/v1/patients/<id>/").save()
    _rollup(minute + timedelta(minutes=5), 10, 40, 0, "api/v1/patients/<id>/").save()  # after `now`: not read

    assert selectors.alert_rule_value(rule, now=minute + timedelta(minutes=1, seconds=10)) == pytest.approx(
        900, rel=0.02
    )


def test_a_p95_rule_is_not_made_fast_by_the_limiters_refusals():
    """Semantics: a p95 rule reads the requests served, not the 429s the limiter answers in a few ms. 60
    requests at 900 ms among 2,000 refusals read 2 ms, and the alert stayed quiet through the slowdown."""
    AlertRule.objects.all().delete()
    rule = AlertRule.objects.create(name="p95 with refusals", metric="p95_ms", threshold=500, for_seconds=0)
    _traffic(900, count=60)
    _traffic(2, count=2000, status=429)
    assert selectors.alert_rule_value(rule) == pytest.approx(900, rel=0.02)


@pytest.mark.parametrize(
    ("day", "zone"),
    [("2026-10-25", "Europe/Berlin"), ("2026-03-29", "Europe/Berlin"), ("2026-11-01", "America/New_York")],
)
def test_a_series_across_a_dst_change_has_one_step_per_hour(staff_api, settings, day, zone):
    """With TIME_ZONE set to the hospital's zone, the steps were added on its wall clock: the night clocks go
    back a 3-hour range had 2 steps and a row in the third hour was a 500 (IndexError); the night they go
    forward, 4 steps, two of them the same hour. Steps are real hours, answered in UTC."""
    settings.TIME_ZONE = zone
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00")
    if zone == "America/New_York":
        start += timedelta(hours=5)  # the change is at 06:00 UTC there
    Service.objects.create(name="Patient API", slug="patients", route_prefix="api/v1/patients/")
    _rollup(start + timedelta(hours=2, minutes=30), 40, 7, 0, "api/v1/patients/<id>/").save()
    response = staff_api.get("/api/v1/metrics/series/", {
        "metric": "requests", "service": "patients", "step": 3600, "start": start.isoformat(),
        "end": (start + timedelta(hours=3)).isoformat()
    })  # fmt: skip
    assert response.status_code == 200
    points = response.json()["points"]
    assert [datetime.fromisoformat(at) for at, _ in points] == [start + timedelta(hours=h) for h in range(3)]
    assert [value for _, value in points] == [None, None, 7]  # nothing measured before the first rollup: no data


@pytest.mark.parametrize(
    ("days_back", "step", "field_error"),
    [(0, 10, True), (0, 90, True), (0, 60, False), (0, 900, False), (40, 60, True), (40, 900, True),
     (40, 3600, False)],
)  # fmt: skip
def test_a_request_series_step_finer_than_its_rollups_is_a_400(staff_api, days_back, step, field_error):
    """A minute's requests all land in the step its start falls in: at step=10 the rate read 6 times what it
    was, then 0 five times; past the minute rollups' retention an hour's read 60 times at step=60."""
    end = timezone.now() - timedelta(days=days_back)
    response = staff_api.get("/api/v1/metrics/series/", {
        "metric": "rps", "step": step, "start": (end - timedelta(hours=2)).isoformat(), "end": end.isoformat()
    })  # fmt: skip
    if field_error:
        assert response.status_code == 400 and "step" in response.json()["errors"]
    else:
        assert response.status_code == 200
    gauge = staff_api.get("/api/v1/metrics/series/", {"metric": "cpu_pct", "step": 10, "start":
                          (end - timedelta(minutes=20)).isoformat(), "end": end.isoformat()})  # fmt: skip
    assert gauge.status_code == 200  # sampled figures have no such grain


def test_a_failing_webhooks_secret_path_is_not_logged(caplog):
    """A chat webhook's path is its credential (hooks.slack.com/services/T0/B0/<secret>): a failed delivery
    wrote it whole into the log, read by everyone who reads logs."""
    import logging

    from tests.helpers import closed_port

    url = f"http://127.0.0.1:{closed_port()}/services/T0000/B0000/s3cr3t-t0ken"
    AlertRule.objects.create(name="CPU", metric="cpu_pct", threshold=1, for_seconds=0, webhook_url=url)
    host_sample(cpu=90.0)
    with caplog.at_level(logging.WARNING, logger="apps.metrics.services"):
        [alert] = alerts_evaluate_committed()
    assert not alert.notifications.get().delivered
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "alert webhook to http://127.0.0.1:" in logged and "s3cr3t" not in logged


def test_an_error_rate_rule_is_not_diluted_by_the_limiters_refusals():
    """Semantics: the error rate is the 5xx among the requests served; 2,000 refusals beside 30 errors in 60
    served read 1.5% and an error-rate rule at 5% stayed quiet while half the requests failed."""
    AlertRule.objects.all().delete()
    rule = AlertRule.objects.create(name="errors with refusals", metric="error_rate_pct", threshold=5, for_seconds=0)
    _traffic(50, count=30)
    _traffic(50, count=30, status=503)
    _traffic(2, count=2000, status=429)
    assert selectors.alert_rule_value(rule) == pytest.approx(50.0)
