"""The lists of what only grows, at a hospital's scale: opening one reads no more than the page it shows.

An unfiltered changelist counted every row of its table for the paginator (`SELECT COUNT(*)` over 1.7M
resource samples: 125-170 ms, every time the list was opened), the samples' date hierarchy listed its years,
months and days with a SELECT DISTINCT over every sample (750-900 ms), and the alerts' severity filter listed
its choices with a SELECT DISTINCT over every alert. The count of a large table is now its statistics
(pg_class.reltuples), ESTIMATE_FROM lowered here so a few rows stand for millions; a filtered list still counts
exactly what it keeps."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core import admin_paginator
from apps.metrics.models import Alert, AlertRule
from apps.resources.models import ResourceSample
from tests.core.test_admin_changelists import GROWING, _rows

pytestmark = pytest.mark.django_db

ROWS = 6


def _page(client, url: str):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return response, [query["sql"] for query in queries]


def _analyze() -> None:
    """What autovacuum does on its own after enough rows changed: the statistics the estimate reads."""
    with connection.cursor() as cursor:
        for url in GROWING:
            app, model = url.strip("/").split("/")[1:3]
            cursor.execute(f'ANALYZE "{app}_{model}"')


def _counts(statements: list[str]) -> list[str]:
    return [sql for sql in statements if re.search(r"SELECT COUNT\(\*\)", sql)]


@pytest.fixture
def large_tables(monkeypatch, admin_user):
    _rows(ROWS, admin_user, 0)
    _analyze()
    monkeypatch.setattr(admin_paginator, "ESTIMATE_FROM", ROWS)


def test_an_unfiltered_list_of_a_large_table_takes_its_count_from_the_statistics(admin_client, large_tables):
    for url in GROWING:
        response, statements = _page(admin_client, url)
        assert not _counts(statements), f"{url} counted its whole table: {_counts(statements)}"
        assert response.context["cl"].result_count == ROWS, url  # ANALYZE read every row of so small a table


def test_a_filtered_list_still_counts_exactly_what_it_keeps(admin_client, large_tables):
    ResourceSample.objects.create(host="host-lone", cpu_pct=1, memory_pct=1, disk_pct=1)
    response, statements = _page(admin_client, "/admin/resources/resourcesample/?q=&host=host-lone")
    counts = _counts(statements)
    assert len(counts) == 1 and "WHERE" in counts[0], counts
    assert response.context["cl"].result_count == 1


def test_a_table_below_the_threshold_is_counted_exactly(admin_client, admin_user):
    _rows(2, admin_user, 0)
    _analyze()
    response, statements = _page(admin_client, "/admin/resources/resourcesample/")
    assert len(_counts(statements)) == 1
    assert response.context["cl"].result_count == 2


@pytest.mark.parametrize("url", ["/admin/resources/resourcesample/", "/admin/metrics/alert/"])
def test_a_list_shows_its_filters_without_reading_its_table(admin_client, admin_user, url):
    _rows(2, admin_user, 0)
    _, statements = _page(admin_client, url)
    distinct = [sql for sql in statements if "DISTINCT" in sql]
    assert not distinct, f"{url} listed a filter's choices from its rows: {distinct}"


def test_the_samples_filter_by_day_and_the_alerts_by_severity(admin_client, admin_user):
    early = ResourceSample.objects.create(host="h-early", cpu_pct=1, memory_pct=1, disk_pct=1)
    ResourceSample.objects.filter(pk=early.pk).update(at=datetime(2026, 1, 5, 12, tzinfo=UTC))
    ResourceSample.objects.create(host="h-now", cpu_pct=1, memory_pct=1, disk_pct=1)
    response, _ = _page(
        admin_client,
        "/admin/resources/resourcesample/?at__gte=2026-01-05+00:00:00%2B00:00&at__lt=2026-01-06+00:00:00%2B00:00",
    )
    assert [row.host for row in response.context["cl"].result_list] == ["h-early"]
    assert b"Past 7 days" in _page(admin_client, "/admin/resources/resourcesample/")[0].content

    for severity in AlertRule.Severity.values:
        rule = AlertRule.objects.create(name=f"rule {severity}", metric="p95_ms", threshold=1, severity=severity)
        Alert.objects.create(rule=rule, value=1, last_value=1, message="m")
    for severity in AlertRule.Severity.values:
        response, _ = _page(admin_client, f"/admin/metrics/alert/?rule_severity__exact={severity}")
        assert [alert.rule_severity for alert in response.context["cl"].result_list] == [severity]


def test_a_page_far_past_the_estimate_is_not_a_500(admin_client, monkeypatch):
    """Pages past an estimate are read (a stale one must not hide rows), but only within a margin: `?p=10**19` was
    turned into an OFFSET past a bigint (DataError: a 500), and any far page read the table up to its OFFSET."""
    from apps.resources.admin import ResourceSampleAdmin

    monkeypatch.setattr(admin_paginator, "ESTIMATE_FROM", 5)
    monkeypatch.setattr(ResourceSampleAdmin, "list_per_page", 5)
    ResourceSample.objects.bulk_create(
        [ResourceSample(host=f"h-{i}", cpu_pct=1, memory_pct=1, disk_pct=1) for i in range(10)]
    )
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE "resources_resourcesample"')
    url = "/admin/resources/resourcesample/"
    assert admin_client.get(f"{url}?p=3").status_code == 200  # just past the estimate's two pages: read
    for page in (10**19, 10**6):
        response = admin_client.get(f"{url}?p={page}")
        assert response.status_code in (200, 302), (page, response.status_code)  # the last page, or ?e=1
