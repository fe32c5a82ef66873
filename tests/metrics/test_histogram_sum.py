"""The hour and day merges sum the rows' encoded histograms with their counts decoded and added in C, not a
histogram object built and added per row (about 190 us a row: a first read, merging each day of a year's series
and storing it, was slower than reading every row without the merges). The sum must be hdrh's own, exactly."""

from __future__ import annotations

import random
from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from hdrh.histogram import HdrHistogram

from apps.metrics import selectors
from apps.metrics.hour_merges import HistogramSum
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import HIGHEST_US, new_histogram, percentile_values


def _random_histogram(rng: random.Random, values: int) -> HdrHistogram:
    histogram = new_histogram()
    for _ in range(values):
        histogram.record_value(rng.randint(1, HIGHEST_US), rng.randint(1, 40))
    return histogram


def _hdrh_sum(encoded: list[bytes]) -> HdrHistogram:
    merged = new_histogram()
    for one in encoded:
        merged.add(HdrHistogram.decode(one))
    return merged


def _same(ours: HdrHistogram, theirs: HdrHistogram) -> None:
    assert list(ours.counts) == list(theirs.counts)
    assert ours.get_total_count() == theirs.get_total_count()
    assert ours.get_max_value() == theirs.get_max_value()
    # hdrh's add takes the min of an empty histogram (0) as a value; decoded, its sum has the counts' own min.
    assert ours.get_min_value() == HdrHistogram.decode(theirs.encode()).get_min_value()
    assert percentile_values(ours, (0, 50, 95, 99, 100)) == percentile_values(theirs, (0, 50, 95, 99, 100))
    assert ours.encode() == theirs.encode()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_sum_of_encoded_histograms_is_hdrhs_own(seed):
    rng = random.Random(seed)  # noqa: S311 - test data
    # Wide and narrow ones, an empty one, one with a single value, in an order where a short one follows a long.
    histograms = [_random_histogram(rng, rng.choice([1, 5, 200])) for _ in range(40)]
    histograms.insert(7, new_histogram())
    tiny = new_histogram()
    tiny.record_value(3)
    histograms.insert(3, tiny)
    encoded = [histogram.encode() for histogram in histograms]
    summed = HistogramSum()
    for one in encoded:
        summed.add_encoded(one)
    _same(summed.result(), _hdrh_sum(encoded))


def test_nothing_summed_is_an_empty_histogram():
    _same(HistogramSum().result(), new_histogram())


def test_a_histogram_of_other_parameters_is_added_as_hdrh_adds_it():
    other = HdrHistogram(1, 3_600_000, 3)  # another layout of counts
    for value in (5, 1_234, 98_765, 3_000_000):
        other.record_value(value, 3)
    ours = _random_histogram(random.Random(9), 30)  # noqa: S311 - test data
    encoded = [ours.encode(), other.encode()]
    summed = HistogramSum()
    for one in encoded:
        summed.add_encoded(one)
    _same(summed.result(), _hdrh_sum(encoded))


@pytest.mark.django_db
def test_a_first_day_merge_builds_no_histogram_per_row(monkeypatch):
    """The first read of a series in day steps merges each day's hourly rows: with a histogram built for each
    row (twice: one thrown away by setdefault, one decoded) it cost more than reading every row unmerged."""
    first_day = (timezone.now() - timedelta(days=60)).astimezone(UTC).replace(hour=0, minute=0, second=0,
                                                                                microsecond=0)  # fmt: skip
    rng = random.Random(5)  # noqa: S311 - test data
    days, routes = 3, ("api/v1/sum-a/<id>/", "api/v1/sum-b/<id>/")
    RequestRollup.objects.bulk_create(
        RequestRollup(resolution="1h", minute=first_day + timedelta(hours=hour), route=route, method="GET",
                      status_class="2xx", client="app", count=10, histogram=_random_histogram(rng, 10).encode())
        for hour in range(days * 24) for route in routes
    )  # fmt: skip
    built = []
    original = HdrHistogram.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(HdrHistogram, "__init__", counting)
    points = selectors.time_series(metric="p95_ms", since=first_day, until=first_day + timedelta(days=days),
                                   step_seconds=86_400, route_prefixes=["api/v1/sum-"])  # fmt: skip
    assert all(value is not None for _, value in points)
    groups = days * len(routes)
    # One sum per (route, day) and one histogram per step: not one or two per hourly row (144 rows here).
    assert len(built) <= groups + days
