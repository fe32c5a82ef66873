"""Run lists never load the stored reports: each is a self-contained HTML page with inline charts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.optimizer.models import OptimizationRun, Recommendation

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "page", ["/admin/optimizer/optimizationrun/", "/admin/optimizer/recommendation/", "/admin/overview/"]
)
def test_the_run_changelist_and_the_overview_leave_the_reports_in_the_database(admin_client, page):
    """The changelists read every listed run's report_html (100 a page; the recommendations' through their run)
    and the overview the last run's and each pending recommendation's run's, to show a date and a status:
    hundreds of kilobytes a run once a report holds its charts and tables."""
    for _ in range(3):
        run = OptimizationRun.objects.create(
            target="database", status="succeeded", report_html="<p>report</p>" * 20_000
        )
        Recommendation.objects.create(run=run, step="database", kind="create_index", subject="i", title="t", reason="r")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(page)
    assert response.status_code == 200
    assert not [query["sql"] for query in queries if "report_html" in query["sql"]]
