"""Hourly history from Prometheus: each hour's mean, under its own hour."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from apps.scaling.history import PROMETHEUS_QUERIES, prometheus_range
from tests.scaling.fake_servers import FakePrometheus

SINCE = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
UNTIL = datetime(2026, 11, 20, 6, 20, tzinfo=UTC)


@pytest.fixture
def prometheus(settings):
    # Prometheus evaluates at start, start + step, ... <= end: here each whole hour that has ended.
    instants = [SINCE + timedelta(hours=h) for h in range(1, 7)]
    fake = FakePrometheus([(at.timestamp(), 10.0 * at.hour) for at in instants])
    settings.SCALING_PROMETHEUS_URL = fake.url
    settings.TIME_ZONE = "UTC"
    yield fake
    fake.stop()


@pytest.mark.parametrize("metric", list(PROMETHEUS_QUERIES))
def test_each_hour_is_the_mean_over_that_hour_under_its_start(prometheus, metric):
    policy = SimpleNamespace(prometheus_selector='app="triage"', service=SimpleNamespace(slug="triage"))
    series = prometheus_range(policy, metric, since=SINCE, until=UNTIL)
    query = prometheus.queries[0]
    # A [5m] rate sampled once an hour read 5 minutes of it, and those of the hour before the label.
    assert "[3600s]" in query["query"] and "[5m]" not in query["query"]
    assert float(query["start"]) == (SINCE + timedelta(hours=1)).timestamp()
    assert float(query["end"]) == UNTIL.timestamp() and query["step"] == "3600"
    # The value evaluated at 01:00 (the mean of 00:00-01:00) is the 00:00 hour's; 06:00 is in progress, left out.
    assert list(series.index) == [SINCE + timedelta(hours=h) for h in range(6)]
    assert list(series) == [10.0 * (h + 1) for h in range(6)]


@pytest.mark.parametrize(
    ("userinfo", "authorization"),
    [("reader:s3cret@", "Basic cmVhZGVyOnMzY3JldA=="), (":tok3n@", "Bearer tok3n"), ("", None)],
)
def test_credentials_in_the_prometheus_url_are_sent_as_its_authorization(prometheus, settings, userinfo, authorization):
    """Left in the URL, urllib took them for part of the host name: every history query failed."""
    settings.SCALING_PROMETHEUS_URL = prometheus.url.replace("http://", f"http://{userinfo}")
    policy = SimpleNamespace(prometheus_selector='app="triage"', service=SimpleNamespace(slug="triage"))
    series = prometheus_range(policy, "request_rate", since=SINCE, until=UNTIL)
    assert len(series) == 6
    assert prometheus.authorizations == [authorization]
