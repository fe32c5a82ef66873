"""Lists of runs read what they show: a run's stored report and samples (findings), its timeline and
histogram, are read by its own page only. A year of nightly runs, each with a report and thousands of
samples, made every list and the plan's history read hundreds of megabytes to draw a table."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db
HEAVY = ('"report_html"', '"findings"', '"timeline"', '"histogram"')


@pytest.fixture
def runs():
    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    plan = BenchmarkPlan.objects.create(name="nightly", service=service)
    made = [
        BenchmarkRun.objects.create(plan=plan, status="succeeded", passed=True, summary={"p95_ms": 10 + i, "rps": 5},
                                    report_html="<p>report</p>" * 1000, findings={"latencies_ms": [1.0] * 5000},
                                    timeline=[{"t": 0, "p95_ms": 1}], histogram=[[1.0, 5]])
        for i in range(3)
    ]  # fmt: skip
    Regression.objects.create(plan=plan, run=made[-1], baseline=10, current=12, change_pct=20, p_value=0.001,
                              threshold_pct=5)  # fmt: skip
    return made


def _heavy_reads(client, url: str) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    run_reads = [q["sql"] for q in queries.captured_queries if 'FROM "benchmarks_benchmarkrun"' in q["sql"]]
    assert run_reads, "the page read no run"
    return response, [sql for sql in run_reads if any(column in sql for column in HEAVY)]


def test_the_api_list_reads_no_report_or_samples(runs, admin_client):
    response, heavy = _heavy_reads(admin_client, "/api/v1/benchmarks/runs/")
    assert response.status_code == 200 and not heavy, heavy
    results = response.json()["results"]
    assert [r["summary"]["p95_ms"] for r in results] == [12, 11, 10] and results[0]["regressions"]
    detail = admin_client.get(f"/api/v1/benchmarks/runs/{runs[0].pk}/").json()
    assert len(detail["findings"]["latencies_ms"]) == 5000  # the run's own page still has everything


def test_the_plans_history_reads_no_report_or_samples(runs, admin_client):
    response, heavy = _heavy_reads(admin_client, f"/benchmarks/plans/{runs[0].plan_id}/report/")
    page = response.content.decode()
    assert response.status_code == 200 and not heavy, heavy
    assert all(f"#{run.pk}" in page for run in runs) and f"run #{runs[-1].pk}: latency_ms +20.0%" in page


def test_the_admin_run_list_reads_no_report_or_samples(runs, admin_client):
    response, heavy = _heavy_reads(admin_client, "/admin/benchmarks/benchmarkrun/")
    assert response.status_code == 200 and not heavy, heavy
    assert admin_client.get(f"/admin/benchmarks/benchmarkrun/{runs[0].pk}/change/").status_code == 200
