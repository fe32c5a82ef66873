"""The "investigate sequential scans" and "review unused index" advice read PostgreSQL's cumulative counters
(seq_scan, seq_tup_read, idx_scan since the statistics were last reset): a table scanned a lot a month ago
and never since was advised at every run for ever. The figures are now counted from the counters the
previous run stored (a run an hour or more earlier), and the report and the CLI say over what window."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.optimizer import database
from apps.optimizer.database import recommendations_for
from apps.optimizer.models import OptimizationStep
from tests.optimizer.support import optimize, sql

pytestmark = pytest.mark.django_db(transaction=True)


def _flush_stats() -> None:
    """This session's counters reach pg_stat_user_tables when it flushes them: at once, here (PostgreSQL 15+)."""
    sql("SELECT pg_stat_force_next_flush()")
    sql("SELECT 1")


def _scan_patients_whole(times: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off")
        for _ in range(times):
            cursor.execute("SELECT count(*) FROM clinical_patient WHERE mrn <> ''")
        cursor.execute("RESET enable_indexscan; RESET enable_bitmapscan; RESET enable_indexonlyscan")
    _flush_stats()


def _backdate(run, days: int) -> None:
    """The run as if it had run `days` ago, its stored counters read then."""
    step = OptimizationStep.objects.get(run=run, name="database")
    then = step.started_at - timedelta(days=days)
    findings = step.findings
    if "counters" in findings:
        findings["counters"]["read_at"] = (timezone.now() - timedelta(days=days)).isoformat()
    OptimizationStep.objects.filter(pk=step.pk).update(started_at=then, findings=findings)


def _seq_scan_advice(run) -> list:
    return list(run.recommendations.filter(kind="investigate_seq_scans", subject="clinical_patient"))


def test_sequential_scans_of_long_ago_are_not_advised_again(data, monkeypatch, admin_client):
    monkeypatch.setattr(database, "SEQ_SCAN_ROWS", 0)  # the synthetic load's 40 patients stand for a large table
    _scan_patients_whole(200)  # a month ago's report, say, read the table whole 200 times

    first, first_output, _ = optimize("database", "--inline")
    assert _seq_scan_advice(first), "the scans were not advised at all"
    _backdate(first, days=30)

    second, output, _ = optimize("database", "--inline")  # nothing read the table whole since
    assert not _seq_scan_advice(second), "the old scans were advised again (cumulative counters)"
    assert "table and index scans counted" in first_output
    window = second.steps.get(name="database").findings["scan_window"]
    assert window["basis"] == "previous run" and window["run"] == first.pk
    assert 29 * 86400 < window["seconds"] < 31 * 86400
    assert f"since run #{first.pk}" in output
    report = admin_client.get(f"/optimizer/runs/{second.pk}/report/").content.decode()
    assert f"since run #{first.pk}" in report and "Sequential scans per table" in report
    _backdate(second, days=1)

    _scan_patients_whole(200)  # scanned whole again, today
    third, _, _ = optimize("database", "--inline")
    [advice] = _seq_scan_advice(third)
    assert f"since run #{second.pk}" in advice.reason
    assert advice.evidence["window"]["seq_scan"] >= 200 and advice.evidence["scan_window"]["run"] == second.pk


def _usage(**fields) -> dict:
    return {"table": "clinical_observation", "index": "dba_obs_value", "scans": 0, "bytes": 2**30, "unique": False,
            "primary": False, "constraint": False, **fields}  # fmt: skip


def test_an_index_used_since_the_last_run_is_not_called_unused_and_one_unused_since_is():
    window = {"basis": "previous run", "run": 7, "since": "2026-11-01T02:30:00+00:00", "seconds": 86400}
    used = {"missing_indexes": [], "table_scans": [], "scan_window": window,
            "index_usage": [_usage(scans=0, window_scans=5)]}  # fmt: skip
    assert not recommendations_for(used)

    # Scanned a million times before the last run, never since: the cumulative count hid it.
    unused = {**used, "index_usage": [_usage(scans=1_000_000, window_scans=0)]}
    [advice] = recommendations_for(unused)
    assert advice.kind == "review_unused_index" and "since run #7" in advice.reason

    # A window of minutes says nothing about an index's use.
    short = {**unused, "scan_window": {**window, "seconds": 600}}
    assert not recommendations_for(short)


def test_a_statistics_reset_after_the_baseline_counts_from_the_reset():
    tables = [{"table": "clinical_patient", "seq_scan": 3, "seq_tup_read": 30, "idx_scan": 1, "live_rows": 10}]
    indexes = [_usage(scans=2)]
    baseline = {"run": 4, "counters": {"read_at": "2026-11-01T00:00:00+00:00", "stats_reset": None,
                                       "tables": {"clinical_patient": {"seq_scan": 90, "seq_tup_read": 900,
                                                                       "idx_scan": 9}},
                                       "indexes": {"dba_obs_value": 50}}}  # fmt: skip
    window = database.scan_window(tables, indexes, read_at="2026-11-02T00:00:00+00:00",
                                  stats_reset="2026-11-01T12:00:00+00:00", baseline=baseline)  # fmt: skip
    assert window["basis"] == "statistics reset" and window["seconds"] == 12 * 3600
    assert "reset after run #4" in window["note"]
    assert tables[0]["window"] == {"seq_scan": 3, "seq_tup_read": 30, "idx_scan": 1}
    assert indexes[0]["window_scans"] == 2
