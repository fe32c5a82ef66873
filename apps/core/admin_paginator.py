"""The admin paginator for the tables that only grow (samples, alerts, runs, forecasts): an unfiltered changelist
takes the table's row count from PostgreSQL's statistics instead of a COUNT(*) over every row.

Django's changelist counts its queryset for the paginator on every page, the first one included, and a count
over millions of rows reads all of them (a second or more on a busy database, every time someone opens the
list). A filtered list still counts exactly: its WHERE narrows the count to what the filter keeps, and the
page numbers and "N results" must be right for what it shows. Below ESTIMATE_FROM rows the count is cheap and
stays exact, so a small install (and SQLite, which keeps no such statistics) sees no difference."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# Rows from which an unfiltered list's count is the planner's estimate: a COUNT(*) over fewer is a few ms.
ESTIMATE_FROM = 100_000


def table_rows_estimate(queryset: QuerySet) -> int | None:
    """The planner's row count of the queryset's table (pg_class.reltuples, kept by ANALYZE and autovacuum),
    or None where there is none: not PostgreSQL, or a table never analyzed (-1)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return row[0] if row is not None and row[0] is not None and row[0] >= 0 else None


class EstimatedCountPaginator(Paginator):
    """Counts a filtered list exactly, and an unfiltered one of at least ESTIMATE_FROM rows by the statistics.

    The estimate is within a few percent of the truth (autovacuum analyzes a table after a tenth of it
    changes): a last page may come out short or empty, which the admin shows as such."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where and not queryset.query.is_sliced:
            estimate = table_rows_estimate(queryset)
            if estimate is not None and estimate >= ESTIMATE_FROM:
                return estimate
        return super().count
