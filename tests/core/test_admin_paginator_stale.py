"""EstimatedCountPaginator with stale statistics: rows added since the table was last analyzed (up to a tenth of
it before autovacuum analyzes again) were past the estimated count, and `?p=` past it redirected to `?e=1`, so the
oldest rows could never be shown. Page numbers and slices are no longer capped at the estimate: a full page offers
the next one, a short page is the last."""

import pytest
from django.db import connection

from apps.core import admin_paginator
from apps.resources.admin import ResourceSampleAdmin
from apps.resources.models import ResourceSample

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the estimate is PostgreSQL's statistics"),
]
URL = "/admin/resources/resourcesample/"


def _add(count: int, prefix: str) -> None:
    ResourceSample.objects.bulk_create(
        [ResourceSample(host=f"{prefix}-{i}", cpu_pct=1, memory_pct=1, disk_pct=1) for i in range(count)]
    )


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(admin_paginator, "ESTIMATE_FROM", 5)
    monkeypatch.setattr(ResourceSampleAdmin, "list_per_page", 5)


def test_rows_added_since_the_last_analyze_are_reached_by_paging(admin_client, small_pages):
    _add(10, "old")
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE "resources_resourcesample"')
    _add(13, "new")  # the estimate says 10 rows, two pages
    seen, page, last = [], 1, 1
    while page <= last:  # the pages the list links to
        response = admin_client.get(f"{URL}?p={page}")
        assert response.status_code == 200, (page, response.get("Location"))
        cl = response.context["cl"]
        assert cl.result_count == 10  # the estimate, as shown
        seen += [row.host for row in cl.result_list]
        page, last = page + 1, cl.paginator.num_pages
    assert sorted(seen) == sorted([f"old-{i}" for i in range(10)] + [f"new-{i}" for i in range(13)])
    assert page == 6  # the fifth page, short (3 rows), was the last


def test_a_page_number_past_the_estimate_is_served(admin_client, small_pages):
    _add(10, "old")
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE "resources_resourcesample"')
    _add(10, "new")
    response = admin_client.get(f"{URL}?p=4")
    assert response.status_code == 200, response.get("Location")
    assert len(response.context["cl"].result_list) == 5
