"""Prometheus series at steps shorter than the scrape interval (the benchmark's 15 s memory series): a value at
every step, each from scrapes of its own (a step is widened to its window). A fake Prometheus here evaluates
the query's range-vector window over scraped samples, as the real one does: a window without a sample has no
value at that step (the shared FakePrometheus answers whatever it is given, whatever the window)."""

import re
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse

import pytest

from apps.benchmarks import analysis
from apps.scaling.history import PROMETHEUS_QUERIES, prometheus_range
from tests.scaling.fake_servers import LoopbackServer, _reply

STARTED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
POLICY = SimpleNamespace(prometheus_selector='app="card"', service=SimpleNamespace(slug="card"))


class ScrapedPrometheus(LoopbackServer):
    """query_range over samples scraped every `scrape` seconds: avg_over_time is the mean of the samples in
    (t - window, t], rate the increase between the first and last of them (two at least), and a step whose
    window holds too few samples is left out of the answer, as Prometheus leaves it out."""

    def __init__(self, samples: list[tuple[float, float]]):
        self.queries: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
                fake.queries.append(query)
                window = int(re.search(r"\[(\d+)s\]", query["query"]).group(1))
                start, end, step = float(query["start"]), float(query["end"]), float(query["step"])
                values, at = [], start
                while at <= end:
                    inside = [(t, v) for t, v in samples if at - window < t <= at]
                    if "rate(" in query["query"] and len(inside) >= 2:
                        values.append([at, str((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]))])
                    elif "rate(" not in query["query"] and inside:
                        values.append([at, str(sum(v for _, v in inside) / len(inside))])
                    at += step
                result = [{"metric": {}, "values": values}] if values else []
                _reply(self, 200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

            def log_message(self, *args):
                pass

        self._serve(Handler)


@pytest.fixture
def scraped(settings):
    fakes = []

    def serve(samples):
        fakes.append(ScrapedPrometheus(samples))
        settings.SCALING_PROMETHEUS_URL = fakes[-1].url
        return fakes[-1]

    settings.TIME_ZONE = "UTC"
    yield serve
    for fake in fakes:
        fake.stop()


def _every(seconds: int, value) -> list[tuple[float, float]]:
    """Scrapes every `seconds`, 7 s off the run's start (scrapes are not aligned with a query's steps), from
    ten minutes before the run to ten after."""
    first = STARTED - timedelta(minutes=10) + timedelta(seconds=7)
    return [((first + timedelta(seconds=seconds * n)).timestamp(), value(n)) for n in range(1200 // seconds)]


@pytest.mark.parametrize("scrape", [30, 60])
def test_a_runs_memory_has_one_point_per_scrape_interval_and_a_trend(scraped, scrape):
    scraped(_every(scrape, lambda n: 40.0 + 0.5 * n))  # a pod leaking memory
    # What apps.benchmarks.services._target_memory reads (it asks for 15 s steps) for a ten-minute run.
    until = STARTED + timedelta(minutes=10)
    series = prometheus_range(POLICY, "memory", since=STARTED, until=until, step_seconds=15)
    # [15s] windows held a scrape every other step (30 s) or one step in four (60 s); 15 s steps over [60s]
    # windows repeated each scrape in four points. One point per minute: each window its own scrapes.
    assert list(series.index) == [STARTED + timedelta(seconds=60 * k) for k in range(10)]
    points = [((at - STARTED).total_seconds(), value) for at, value in series.items()]
    trend = analysis.memory_slope(points)
    assert trend["samples"] == 10 and trend["memory_slope_pct_per_hour"] > 0 and trend["significant"]


def test_flat_noisy_memory_is_rarely_a_significant_trend(scraped):
    """Each scrape repeated in four overlapping points made linregress's p-value far too small: flat noise was
    a significant memory trend in 10 of 60 ten-minute runs (R4's review)."""
    import random

    draw = random.Random(4)  # noqa: S311 - reproducible noise, not a secret
    significant = 0
    for _ in range(60):
        noise = [40.0 + draw.gauss(0, 1) for _ in range(40)]
        scraped(_every(60, lambda n, noise=noise: noise[n]))  # no trend: independent noise at each scrape
        series = prometheus_range(POLICY, "memory", since=STARTED, until=STARTED + timedelta(minutes=10),
                                  step_seconds=15)  # fmt: skip
        points = [((at - STARTED).total_seconds(), value) for at, value in series.items()]
        significant += bool(analysis.memory_slope(points).get("significant"))
    assert significant <= 3  # at p < 0.01 on independent points: about 1 run in 100


def test_a_rate_at_a_short_step_has_two_scrapes_in_each_window(scraped):
    prometheus = scraped(_every(60, lambda n: 600.0 * n))  # a counter: 10 requests a second
    series = prometheus_range(
        POLICY, "request_rate", since=STARTED, until=STARTED + timedelta(minutes=10), step_seconds=15
    )
    assert "[240s]" in prometheus.queries[0]["query"] and prometheus.queries[0]["step"] == "240"
    assert len(series) == 2 and set(series) == {10.0}


@pytest.mark.parametrize("metric", list(PROMETHEUS_QUERIES))
def test_no_window_is_shorter_than_a_scrape_interval_and_an_hour_is_still_its_own_mean(scraped, metric):
    prometheus = scraped([])
    prometheus_range(POLICY, metric, since=STARTED, until=STARTED + timedelta(seconds=120), step_seconds=15)
    prometheus_range(POLICY, metric, since=STARTED, until=STARTED + timedelta(hours=6), step_seconds=3600)
    short, hourly = (query["query"] for query in prometheus.queries)
    windows = [int(seconds) for seconds in re.findall(r"\[(\d+)s\]", short)]
    assert windows and min(windows) >= 60, short
    assert set(re.findall(r"\[(\d+)s\]", hourly)) == {"3600"}, hourly
