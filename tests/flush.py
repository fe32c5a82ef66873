"""The flush after each transactional test, truncating only the tables that hold rows.

Django's TransactionTestCase empties the database after each such test with one TRUNCATE of every table
(some 60 here, with their indexes): about 1 s of a 1.2 to 1.8 s teardown on the CI machine, after each of
the suite's 500 and more transactional tests, though a test writes to a few. Here one statement locks every
table as that TRUNCATE would (ACCESS EXCLUSIVE: no session writes while it looks, none keeps a row the old
flush would have emptied), truncates those that hold a row and the tables whose foreign keys point at them
(as TRUNCATE asks), and leaves the empty ones as they are. The database after it is the same: empty. Only
the tests' teardown flush does this; `manage.py flush` (and a test that calls it) is the product's own. The
reload of the seeded rows under --reuse-db (tests/reuse_db.py) empties the other tables with the same statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.backends.postgresql.operations import DatabaseOperations
from django.test import TransactionTestCase

_FLUSH = """DO $flush$
DECLARE
    listed regclass[] := ARRAY[{listed}]::regclass[];
    held regclass[] := '{{}}';
    more regclass[];
    found boolean;
    t regclass;
BEGIN
    LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE;
    FOREACH t IN ARRAY listed LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', t) INTO found;
        IF found THEN
            held := held || t;
        END IF;
    END LOOP;
    LOOP
        SELECT coalesce(array_agg(DISTINCT c.conrelid::regclass), '{{}}') INTO more FROM pg_constraint c
         WHERE c.contype = 'f' AND c.confrelid = ANY(held) AND c.conrelid = ANY(listed)
           AND NOT c.conrelid = ANY(held);
        EXIT WHEN cardinality(more) = 0;
        held := held || more;
    END LOOP;
    IF cardinality(held) > 0 THEN
        EXECUTE 'TRUNCATE ' || (SELECT string_agg(h::text, ', ') FROM unnest(held) h);
    END IF;
END
$flush$"""


def held_tables_flush_sql(operations: DatabaseOperations, tables: list[str]) -> list[str]:
    """The one statement that empties `tables` as TRUNCATE of them all would, truncating the non-empty ones."""
    quoted = [operations.quote_name(table) for table in tables]
    listed = ", ".join("'" + name.replace("'", "''") + "'" for name in quoted)
    return [_FLUSH.format(listed=listed, tables=", ".join(quoted))]


@contextmanager
def teardown_flush_of_held_tables() -> Iterator[None]:
    """While it lasts, TransactionTestCase's teardown flush (no sequences reset, no CASCADE) truncates held
    tables only; any other flush goes through Django's own SQL."""
    original_sql_flush = DatabaseOperations.sql_flush
    original_teardown = TransactionTestCase._fixture_teardown
    tearing_down = False

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if tearing_down and tables and not reset_sequences and not allow_cascade:
            return held_tables_flush_sql(self, list(tables))
        return original_sql_flush(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)

    def fixture_teardown(self):
        nonlocal tearing_down
        tearing_down = True
        try:
            return original_teardown(self)
        finally:
            tearing_down = False

    DatabaseOperations.sql_flush = sql_flush
    TransactionTestCase._fixture_teardown = fixture_teardown
    try:
        yield
    finally:
        DatabaseOperations.sql_flush = original_sql_flush
        TransactionTestCase._fixture_teardown = original_teardown
