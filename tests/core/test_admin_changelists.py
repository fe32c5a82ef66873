"""The lists of what only grows (alerts, adaptive changes, samples, runs, forecasts, recommendations, profiles):
a page costs the same queries whatever the table holds, and a filtered page counts its own rows only, never
the whole table again (Django's "N results (M total)": a second COUNT(*) over every row)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.benchmarks.models import BenchmarkPlan
from apps.inference.models import ModelDeployment
from apps.inference.services import bundled_deployments_ensure
from apps.ratelimits.models import RateLimitPolicy
from apps.services.services import service_ensure
from tests.admin_pages import rows_the_workers_make

pytestmark = pytest.mark.django_db

# changelist -> a filter that keeps some rows
GROWING = {
    "/admin/metrics/alert/": "state__exact=resolved",
    "/admin/optimizer/optimizationrun/": "status__exact=pending",
    "/admin/optimizer/recommendation/": "status__exact=pending",
    "/admin/ratelimits/ratelimitadjustment/": "direction__exact=tighten",
    "/admin/resources/resourcerecommendation/": "status__exact=open",
    "/admin/resources/resourcesample/": "q=",
    "/admin/scaling/workloadforecast/": "metric__exact=rps",
    "/admin/scaling/scalingrecommendation/": "emergency__exact=0",
    "/admin/benchmarks/benchmarkrun/": "status__exact=pending",
    "/admin/benchmarks/regression/": "change_point__exact=0",
    "/admin/inference/quantizationprofile/": "mode__exact=fp32",
}


def _rows(count: int, user, start: int) -> None:
    bundled_deployments_ensure()
    deployment = ModelDeployment.objects.first()
    policy = RateLimitPolicy.objects.first()
    for i in range(start, start + count):
        service, _ = service_ensure(slug=f"svc-{i}", name=f"Service {i}")
        plan = BenchmarkPlan.objects.create(name=f"plan {i}", service=service, requests=[])
        rows_the_workers_make(service=service, plan=plan, policy=policy, deployment=deployment, user=user,
                              label=str(i), decided_by=user)  # fmt: skip


def _page(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return [query["sql"] for query in queries]


def test_growing_lists_cost_the_same_queries_and_count_only_what_they_show(admin_client, admin_user):
    _rows(2, admin_user, 0)
    for url, query in GROWING.items():
        _page(admin_client, f"{url}?{query}")  # warm: content types, sessions
    few = {url: len(_page(admin_client, f"{url}?{query}")) for url, query in GROWING.items()}
    _rows(8, admin_user, 2)
    for url, query in GROWING.items():
        statements = _page(admin_client, f"{url}?{query}")
        assert len(statements) <= few[url], f"{url}: {len(statements)} queries with 10 rows, {few[url]} with 2"
        counts = [sql for sql in statements if re.search(r"SELECT COUNT\(\*\)", sql)]
        assert len(counts) <= 1, f"{url} counted the table again: {counts}"
