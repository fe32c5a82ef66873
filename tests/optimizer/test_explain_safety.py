"""EXPLAIN ANALYZE executes the statement it explains, and each pattern is executed five more times to time it:
on the live database of a hospital that must never change data nor run away."""

import pytest
from django.db import DatabaseError, connection
from django.db.models import IntegerField
from django.db.models.expressions import RawSQL

from apps.clinical.models import Patient
from apps.clinical.query_patterns import QueryPattern
from apps.optimizer import database

pytestmark = pytest.mark.django_db


def _pattern(name: str, sql: str) -> QueryPattern:
    """A registered pattern whose SELECT carries an expression: a data-modifying function or a slow one."""
    return QueryPattern(
        name,
        f"probe: {sql}",
        lambda s: Patient.objects.filter(pk=s.patient_id).annotate(probe=RawSQL(sql, [], output_field=IntegerField())),  # noqa: S611 - constant test SQL
        None,
    )


def _sql(statement: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(statement)
        return cursor.fetchall() if cursor.description else []


def test_a_pattern_that_would_write_is_refused_and_changes_nothing(data, monkeypatch):
    """A pattern's SELECT can call a function that writes (nextval here; a trigger function or a data-modifying
    CTE alike): it ran six times, once under EXPLAIN ANALYZE and five times to time it. Now every execution
    runs in a read-only transaction that is rolled back, and the write is refused."""
    _sql("CREATE SEQUENCE optimizer_probe_seq")
    monkeypatch.setattr(database, "QUERY_PATTERNS", [_pattern("writes", "nextval('optimizer_probe_seq')")])
    with pytest.raises(DatabaseError, match="read-only transaction"):
        database.explain_patterns()
    assert _sql("SELECT last_value, is_called FROM optimizer_probe_seq") == [(1, False)]


def test_a_runaway_pattern_is_stopped_at_the_statement_timeout_and_reported_with_its_plan(data, monkeypatch, settings):
    """A pattern gone slow (a lost index on a large table) ran under EXPLAIN ANALYZE with no statement timeout,
    then five times more, holding the step (and its snapshot) for as long as it took. Now each execution stops at
    OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS; the pattern is reported as timed out with its estimated plan, the others are
    measured, and the response-time target is missed, not judged on the patterns that finished."""
    import time

    from apps.optimizer.steps import STEPS
    from apps.optimizer.types import Goals

    settings.OPTIMIZER_EXPLAIN_TIMEOUT_SECONDS = 0.3
    slow, fast = _pattern("runaway", "(SELECT 1 FROM pg_sleep(20))"), _pattern("fast", "1")
    monkeypatch.setattr(database, "QUERY_PATTERNS", [slow, fast])
    started = time.monotonic()
    rows = {row["pattern"]: row for row in database.explain_patterns()}
    assert time.monotonic() - started < 10
    assert rows["runaway"]["timed_out_ms"] == 300 and "wall_ms" not in rows["runaway"]
    assert rows["runaway"]["plan"]["Node Type"] and rows["runaway"]["indexes_used"]  # EXPLAIN without ANALYZE
    assert rows["fast"]["wall_ms"] >= 0 and "timed_out_ms" not in rows["fast"]
    _sql("SELECT 1")  # the connection is usable, and the timeout did not outlive the measurement
    assert _sql("SHOW statement_timeout") == [("0",)]
    # Every measured pattern is judged: the timed-out one first, then the slowest of those timed.
    verdict, _slowest_timed = STEPS["database"].verdicts({"patterns": list(rows.values())}, Goals(response_time_ms=100))
    assert verdict["met"] is False and "runaway" in verdict["subject"] and verdict["measured"] == 300
    from tests.optimizer.support import optimize

    run, output, code = optimize("database", "--inline", "--response-time", "0.1")
    assert code == 1 and run.targets_met is False, output
    assert "TIMED OUT at 300 ms" in output and "stopped at the 300 ms statement timeout" in run.report_html
