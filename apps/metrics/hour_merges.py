"""Long-window latency reads: each closed hour's minute histograms merged once, kept in the shared cache.

A 7-day p95 decoded and merged every minute rollup in its window: about 10,000 rows per route key at ~61 us a
decode, seconds for `/api/v1/metrics/slo/`, and a 7-day p95 alert rule paid it every minute. The minute rows
of one (route, status class) in one hour are merged once and cached under a key naming what the rows were
(how many, the newest id, their requests and errors), so a late row for that hour (a new row, or requests
merged into one) names another key and is never missed; nothing has to invalidate anything. Hours cut by the
window's edges, the hour still filling, and hourly rows (past 30 days) are read row by row as before.

The figures are the same: an HDR merge sums bucket counts and keeps the highest value, so the same rows
merged hour by hour then together give the same histogram as merged one by one (a test compares them).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone
from hdrh.codec import HdrHistogramEncoder, payload_header_size
from hdrh.histogram import HdrHistogram
from pyhdrh import add_array
from pyhdrh import decode as decode_counts

from apps.metrics.models import RequestRollup
from apps.metrics.recorder import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS, new_histogram

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# An hour is merged once it ended this long ago: before, each flush (every few seconds) would change its key
# and store a merge nobody reads again. Correctness does not depend on it: a later row names another key.
SETTLED_AFTER = timedelta(minutes=2)
# The longest window read (SLOs, alert rules: 7 days) from the moment an hour settles, and a little more.
CACHE_SECONDS = int((timedelta(days=7) + 2 * HOUR).total_seconds())
KEY_VERSION = 1  # raise it if the histograms' parameters or the value stored change

Group = tuple[str, str, datetime]  # route, status class, hour (UTC)


def rows_histogram(rows: QuerySet[RequestRollup]) -> tuple[HdrHistogram, int, int]:
    """Every row's histogram decoded and merged, with the requests and errors: short windows, and the
    reference the hourly merges are compared with."""
    merged = new_histogram()
    count = errors = 0
    for histogram, row_count, row_errors in rows.values_list("histogram", "count", "errors"):
        merged.add(HdrHistogram.decode(bytes(histogram)))
        count += row_count
        errors += row_errors
    return merged, count, errors


def window_histogram(
    rows: QuerySet[RequestRollup], *, since: datetime | None, until: datetime | None = None
) -> tuple[HdrHistogram, int, int]:
    """`rows` (already limited to [since, until)) merged, with their requests and errors: the whole settled
    hours inside the window from their cached hourly merges, the rest row by row. The same figures as
    `rows_histogram(rows)`."""
    span = settled_hours(since, until) if since is not None else None
    if span is None:  # no whole settled hour (1-hour windows, the live feed): one query, as before
        return rows_histogram(rows)
    edges, hourly = hours_split(rows, *span)
    merged, count, errors = rows_histogram(edges)
    for _hour, histogram, group_count, group_errors in hour_histograms(hourly):
        merged.add(histogram)
        count += group_count
        errors += group_errors
    return merged, count, errors


def settled_hours(since: datetime, until: datetime | None) -> tuple[datetime, datetime] | None:
    """[first, last): the whole hours inside the window that have settled, read from merges; None if none."""
    settled = timezone.now() - SETTLED_AFTER
    first = _hour_ceil(since)
    last = hour_floor(min(until, settled) if until is not None else settled)
    return (first, last) if last > first else None


def hours_split(rows: QuerySet[RequestRollup], first: datetime, last: datetime) -> tuple[QuerySet, QuerySet]:
    """`rows` as the rows read one by one (the window's edges, and hourly rows inside: the other resolution;
    none within the 30 days minute rows are kept) and the minute rows of the whole hours [first, last), each
    said so the minute index finds it (a NOT read every row of the window)."""
    whole_hours = Q(resolution=RequestRollup.Resolution.MINUTE, minute__gte=first, minute__lt=last)
    edges = Q(minute__lt=first) | Q(minute__gte=last) | Q(resolution=RequestRollup.Resolution.HOUR, minute__gte=first)
    return rows.filter(edges), rows.filter(whole_hours)


def hour_histograms(hourly: QuerySet[RequestRollup]) -> Iterator[tuple[datetime, HdrHistogram, int, int]]:
    """Each (route, status class, hour) of `hourly`'s rows merged, with its hour (UTC), requests and errors:
    from the cache where it is, else merged from the rows and stored."""
    return _span_histograms(hourly, HOUR)


def day_histograms(daily: QuerySet[RequestRollup]) -> Iterator[tuple[datetime, HdrHistogram, int, int]]:
    """Each (route, status class, UTC day) of `daily`'s rows (the hourly rows past the minute rollups' 30
    days) merged, with its day, requests and errors: a year's p95 series decoded every hourly row of it, 80,400
    for 10 route keys (8.3 s a chart); whole days of them change only when retention drops them."""
    return _span_histograms(daily, DAY)


def _span_histograms(
    rows: QuerySet[RequestRollup], span: timedelta
) -> Iterator[tuple[datetime, HdrHistogram, int, int]]:
    trunc = TruncHour("minute", tzinfo=UTC) if span == HOUR else TruncDay("minute", tzinfo=UTC)
    groups = (
        rows.annotate(start=trunc)
        .values("route", "status_class", "start")
        .annotate(rows=Count("pk"), newest=Max("pk"), requests=Sum("count"), failed=Sum("errors"))
        .order_by()
    )
    keys = {
        (g["route"], g["status_class"], g["start"]): _key(
            g["route"], g["status_class"], g["start"], g["rows"], g["newest"], g["requests"], g["failed"], span=span
        )
        for g in groups
    }
    cached = _cache_get_many(keys.values())
    reachable = cached is not None  # else storing would wait out the socket timeout a second time
    cached = cached or {}
    missing = set()
    for group, key in keys.items():
        if key in cached:
            encoded, group_count, group_errors = cached[key]
            yield group[2], HdrHistogram.decode(encoded), group_count, group_errors
        else:
            missing.add(group)
    if missing:
        fresh, store = _merge_groups(rows, missing) if span == HOUR else _merge_groups(rows, missing, span)
        for (_route, _status_class, hour), histogram, group_count, group_errors in fresh:
            yield hour, histogram, group_count, group_errors
        if reachable:
            _cache_set_many(store)


def _merge_groups(rows: QuerySet[RequestRollup], groups: set[Group], span: timedelta = HOUR) -> tuple[list, dict]:
    """Each group's rows merged (the group, its histogram, requests, errors), and the cache entries to store.
    The key is computed from the rows read here, not from the count read before: a row that arrived in
    between is in this merge and in its key."""
    spans: dict[tuple[str, str], list[datetime]] = {}
    for route, status_class, hour in groups:
        extent = spans.setdefault((route, status_class), [hour, hour])
        extent[0], extent[1] = min(extent[0], hour), max(extent[1], hour)
    wanted = Q(pk__in=[])
    for (route, status_class), (start, end) in spans.items():
        wanted |= Q(route=route, status_class=status_class, minute__gte=start, minute__lt=end + span)
    acc: dict[Group, list] = {}
    starts: dict[datetime, datetime] = {}  # each minute's hour or day, worked out once (routes share minutes)
    floor = hour_floor if span == HOUR else day_floor
    columns = ("pk", "route", "status_class", "minute", "histogram", "count", "errors")
    for pk, route, status_class, minute, histogram, row_count, row_errors in (
        rows.filter(wanted).values_list(*columns).iterator(chunk_size=2000)
    ):
        start = starts.get(minute)
        if start is None:
            start = starts[minute] = floor(minute)
        group = (route, status_class, start)
        if group not in groups:  # an hour of this span read from the cache
            continue
        entry = acc.get(group)
        if entry is None:  # not setdefault: its new histogram (~100 us) was built for every row and thrown away
            entry = acc[group] = [HistogramSum(), 0, 0, 0, 0]  # histogram, rows, newest, count, errors
        entry[0].add_encoded(bytes(histogram))
        entry[1] += 1
        entry[2] = max(entry[2], pk)
        entry[3] += row_count
        entry[4] += row_errors
    fresh, store = [], {}
    for (route, status_class, hour), (summed, merged, newest, row_count, row_errors) in acc.items():
        histogram = summed.result()
        fresh.append(((route, status_class, hour), histogram, row_count, row_errors))
        key = _key(route, status_class, hour, merged, newest, row_count, row_errors, span=span)
        store[key] = (histogram.encode(), row_count, row_errors)
    return fresh, store


_ROLLUP_LAYOUT = (LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def _layout(histogram) -> tuple[int, int, int]:
    """A histogram's (or an encoded one's header's) parameters: equal ones share the layout of their counts."""
    return histogram.lowest_trackable_value, histogram.highest_trackable_value, histogram.significant_figures


class HistogramSum:
    """Encoded histograms (the rollups' own parameters) summed into one, their counts decoded and added in C.

    `HdrHistogram.decode` then `add`, per row, built a histogram object for each (its counts allocated, its
    settings computed in Python) and checked it in Python again: about 190 us a row, which made a first read,
    merging each hour or day and storing it, slower than reading every row without the merges. The counts, and
    so every figure, are the same (tests/metrics/test_histogram_sum.py compares them with hdrh's own decode and
    add, and would catch a change in the decoded payload's `_data`, hdrh's own attribute: hdrhistogram is pinned)."""

    def __init__(self):
        import numpy as np  # here, as in recorder.percentile_values: not at the import of every web process

        self.histogram = new_histogram()
        self._scratch = (ctypes.c_ulonglong * self.histogram.counts_len)()
        # Views of both counts arrays (the same memory): numpy adds ~2,000 counts in ~2 us, pyhdrh's add_array ~18
        self._sum_counts = np.ctypeslib.as_array(self.histogram.counts)
        self._scratch_counts = np.ctypeslib.as_array(self._scratch)
        self._dirty = 0  # the scratch counts written by the last decode (a prefix: counts run up to its highest)
        self._total = 0
        self._lowest_index = self._highest_index = -1

    def add_encoded(self, encoded: bytes) -> None:
        wire = HdrHistogramEncoder.decode(encoded)  # base64, zlib and the headers: checked as hdrh checks them
        header = wire.payload
        if _layout(header) != _ROLLUP_LAYOUT:  # another layout of counts: hdrh's own add re-records each value
            self.add(HdrHistogram.decode(encoded))
            return
        scratch = ctypes.addressof(self._scratch)
        ctypes.memset(scratch, 0, self._dirty * 8)  # the decode writes only the nonzero counts
        found = decode_counts(wire._data, payload_header_size, scratch, self.histogram.counts_len, 8)
        if found["total"]:
            highest = found["max_nonzero_index"]
            self._dirty = highest + 1
            self._sum_counts[: self._dirty] += self._scratch_counts[: self._dirty]  # the zeros above: no need
            self._note(found["total"], found["min_nonzero_index"], highest)

    def add(self, other: HdrHistogram) -> None:
        if not other.get_total_count():
            return
        if _layout(other) != _ROLLUP_LAYOUT:
            same = new_histogram()
            same.add(other)  # hdrh's path for another layout (raises for values past ours, as before)
            other = same
        add_array(ctypes.addressof(self.histogram.counts), ctypes.addressof(other.counts), other.counts_len, 8)
        lowest = next(index for index in range(other.counts_len) if other.counts[index])
        highest = other.get_counts_array_index(other.get_max_value())
        self._note(other.get_total_count(), lowest, highest)

    def _note(self, total: int, lowest_index: int, highest_index: int) -> None:
        self._total += total
        if self._lowest_index < 0 or lowest_index < self._lowest_index:
            self._lowest_index = lowest_index
        self._highest_index = max(self._highest_index, highest_index)

    def result(self) -> HdrHistogram:
        """The sum, its total, lowest and highest values set as a decoded histogram's are."""
        if self._total:
            self.histogram.set_internal_tacking_values(self._lowest_index, self._highest_index, self._total)
        return self.histogram


def _key(route: str, status_class: str, hour: datetime, rows: int, newest: int, requests, errors, *, span=HOUR) -> str:
    what = "\x00".join(map(str, (route, status_class, int(hour.timestamp()), rows, newest, int(requests), int(errors))))
    kind = "hour-merge" if span == HOUR else "day-merge"
    return f"metrics:{kind}:{KEY_VERSION}:{hashlib.sha256(what.encode()).hexdigest()}"


def _cache_get_many(keys: Iterable[str]) -> dict | None:
    """The cached merges; None when the cache is unreachable (the rows are merged instead: slower, same
    figures, never a failed SLO read or alert evaluation)."""
    keys = list(keys)
    if not keys:
        return {}
    try:
        return cache.get_many(keys)
    except Exception:  # a cache outage: any backend's error
        logger.warning("hourly latency merges: cache unreadable, merging the rows", exc_info=True)
        return None


def _cache_set_many(entries: dict) -> None:
    if not entries:
        return
    try:
        cache.set_many(entries, timeout=CACHE_SECONDS)
    except Exception:  # a cache outage: the next read merges the rows again
        logger.warning("hourly latency merges: cache unwritable", exc_info=True)


def day_floor(at: datetime) -> datetime:
    """The UTC day `at` falls in."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def days_split(rows: QuerySet[RequestRollup], since: datetime, until: datetime) -> tuple[QuerySet, QuerySet] | None:
    """`rows` as the rows read one by one and the hourly rows of the whole UTC days inside [since, until)
    (those are past the minute rollups' 30 days: no later row comes for them but a late downsample's, which
    names another key); None when no whole day is inside."""
    first = day_floor(since) if day_floor(since) == since else day_floor(since) + DAY
    last = day_floor(until)
    if last <= first:
        return None
    whole_days = Q(resolution=RequestRollup.Resolution.HOUR, minute__gte=first, minute__lt=last)
    return rows.exclude(whole_days), rows.filter(whole_days)


def hour_floor(at: datetime) -> datetime:
    """The UTC hour `at` falls in."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_ceil(at: datetime) -> datetime:
    floor = hour_floor(at)
    return floor if floor == at else floor + HOUR
