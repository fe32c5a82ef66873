"""The counters each process flushes to the database every few seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from apps.caching import selectors
from apps.caching.models import CacheStat
from tests.caching.support import make_stack

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def second_stat_write_fails() -> Iterator[None]:
    """A real PostgreSQL trigger that makes the second counter row a flush writes fail (as a lost connection,
    a full disk or a statement timeout would), counting writes in a table that commits with them."""
    if connection.vendor != "postgresql":
        pytest.skip("a PL/pgSQL trigger")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE test_stat_writes (n integer NOT NULL)")
        cursor.execute("INSERT INTO test_stat_writes VALUES (0)")
        cursor.execute(
            """CREATE FUNCTION test_fail_second_stat_write() RETURNS trigger LANGUAGE plpgsql AS $$
            DECLARE written integer;
            BEGIN
                UPDATE test_stat_writes SET n = n + 1 RETURNING n INTO written;
                IF written = 2 THEN RAISE EXCEPTION 'the second counter row fails'; END IF;
                RETURN NEW;
            END $$"""
        )
        cursor.execute(
            f"CREATE TRIGGER test_fail_second_stat_write BEFORE INSERT OR UPDATE ON {CacheStat._meta.db_table} "
            "FOR EACH ROW EXECUTE FUNCTION test_fail_second_stat_write()"
        )
    try:
        yield
    finally:
        drop_failing_trigger()
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS test_stat_writes")


def drop_failing_trigger() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS test_fail_second_stat_write ON {CacheStat._meta.db_table}")
        cursor.execute("DROP FUNCTION IF EXISTS test_fail_second_stat_write()")


def test_a_flush_that_fails_halfway_is_not_counted_twice_when_retried(second_stat_write_fails):
    """The rows of a flush were written one by one: a database error at the second left the first committed,
    and the whole flush was added again at the next one, so those counters (requests, hits) counted twice."""
    stack = make_stack()
    for _ in range(3):
        stack.get_or_load("audit_logs", ["page", 5], lambda: {"rows": [5]})
    expected = stack.stats()

    stack.flush_stats()  # fails at its second row; the counters are kept for the next flush
    assert stack.stats() == expected
    assert not CacheStat.objects.exists()  # nothing of it stayed
    drop_failing_trigger()  # the database is back
    stack.flush_stats()

    tiers = selectors.cache_stats(namespace="audit_logs")["audit_logs"]["tiers"]
    assert tiers["source"]["requests"] == 3
    assert tiers["source"]["loads"] == 1
    assert tiers["l1"]["hits"] == 2
    assert tiers["l1"]["misses"] == 1 and tiers["l2"]["misses"] == 1 and tiers["l3"]["misses"] == 1
    assert tiers["l2"]["bytes"] == expected[("audit_logs", "l2")]["bytes"] > 0
    assert CacheStat.objects.filter(process=stack.process).count() == 4
