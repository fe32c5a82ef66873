"""The unused-index advice needs a window of 20 h or more, and counted from the latest run an hour or more older:
any run less than 20 h after another (an ad-hoc run beside the nightly) gave a short window, and the advice was
dropped at every run after it, for good. An index's scans are now counted from the latest run 20 h or more older
(the tables' still from the latest an hour or more older), and the advice, report and CLI say each window.
Real PostgreSQL: a 10 MiB index nothing scans, runs moved back in time as in test_scan_advice_window."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.optimizer.models import OptimizationStep
from tests.optimizer.support import optimize, sql

pytestmark = pytest.mark.django_db(transaction=True)

UNUSED = "clinical_n2_probe_code"


@pytest.fixture
def unused_index():
    """A table of ours with an index of 10 MiB nothing reads (over the advice's 8 MiB floor)."""
    sql("CREATE TABLE clinical_n2_probe (id int, code text)")
    sql("INSERT INTO clinical_n2_probe SELECT n, md5(n::text) FROM generate_series(1, 200000) n")
    sql(f"CREATE INDEX {UNUSED} ON clinical_n2_probe (code)")
    yield
    sql("DROP TABLE clinical_n2_probe")


def _backdate(run, hours: float) -> None:
    step = OptimizationStep.objects.get(run=run, name="database")
    findings = step.findings
    findings["counters"]["read_at"] = (timezone.now() - timedelta(hours=hours)).isoformat()
    OptimizationStep.objects.filter(pk=step.pk).update(
        started_at=step.started_at - timedelta(hours=hours), findings=findings
    )


def _unused_advice(run) -> list:
    return list(run.recommendations.filter(kind="review_unused_index", subject=UNUSED))


def test_a_run_less_than_20_h_after_another_no_longer_hides_unused_indexes(data, unused_index, admin_client):
    nightly, _, _ = optimize("database", "--inline")
    _backdate(nightly, hours=30)
    ad_hoc, _, _ = optimize("database", "--inline")  # an ad-hoc run 18 h after the nightly
    _backdate(ad_hoc, hours=12)

    run, output, _ = optimize("database", "--inline")
    [advice] = _unused_advice(run)  # was none: "counted in the 12.0 h since run #<ad hoc>", too short
    assert f"Never scanned in the 30.0 h since run #{nightly.pk}" in advice.reason, advice.reason
    assert advice.evidence["scan_window"]["run"] == nightly.pk
    findings = run.steps.get(name="database").findings
    assert findings["index_window"]["run"] == nightly.pk
    assert findings["scan_window"]["run"] == ad_hoc.pk  # the sequential-scan advice keeps the hour's baseline
    expected = f"table scans counted in the 12.0 h since run #{ad_hoc.pk}"
    assert expected in output and f"index scans in the 30.0 h since run #{nightly.pk}" in output, output
    report = admin_client.get(f"/optimizer/runs/{run.pk}/report/").content.decode()
    assert f"Table scans below are counted in the 12.0 h since run #{ad_hoc.pk}" in report
    assert f"index scans in the 30.0 h since run #{nightly.pk}" in report


def test_a_window_under_20_h_is_said_so_and_nothing_is_called_unused(data, unused_index):
    """A statistics reset since the last run 20 h or more older: the index window starts at the reset, minutes ago
    (pg_stat_reset on this test's own database)."""
    first, _, _ = optimize("database", "--inline")
    _backdate(first, hours=30)
    sql("SELECT pg_stat_reset()")

    run, output, _ = optimize("database", "--inline")
    assert not _unused_advice(run)
    window = run.steps.get(name="database").findings["index_window"]
    assert window["basis"] == "statistics reset" and window["seconds"] < 3600
    assert f"statistics were reset after run #{first.pk}" in window["note"]
    assert "under 20 h: no index is called unused over it" in window["note"] and window["note"] in output, output
