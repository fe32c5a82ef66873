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
