"""The size budgets of the built dashboard (deterministic, so asserted): the first load's JavaScript and
what each lazily loaded page adds, gzipped. `make test` builds the dashboard before pytest runs."""

from tests.e2e.budgets import INITIAL_JS_BUDGET_KB, PAGE_CHUNK_BUDGET_KB, bundle_sizes
from tests.e2e.stack import REPO_ROOT

PAGES = {"OverviewPage", "ServicePage", "CachePage", "RateLimitsPage", "BenchmarksPage", "BenchmarkRunPage",
         "ScalingPage", "InferencePage", "PatientsPage", "AuditPage", "NotFoundPage"}  # fmt: skip


def test_initial_javascript_and_every_page_chunk_fit_their_budgets():
    sizes = bundle_sizes(REPO_ROOT / "static" / "dashboard")
    assert set(sizes["pages"]) == PAGES, "one lazily loaded chunk per page"
    assert 0 < sizes["initial_js_kb"] <= INITIAL_JS_BUDGET_KB, sizes
    over = {page: kb for page, kb in sizes["pages"].items() if kb > PAGE_CHUNK_BUDGET_KB}
    assert not over, over
