"""The admin paginator for the tables that only grow (samples, alerts, runs, forecasts): an unfiltered changelist
takes the table's row count from PostgreSQL's statistics instead of a COUNT(*) over every row.

Django's changelist counts its queryset for the paginator on every page, the first one included, and a count
over millions of rows reads all of them (a second or more on a busy database, every time someone opens the
list). A filtered list still counts exactly: its WHERE narrows the count to what the filter keeps, and the
page numbers and "N results" must be right for what it shows. Below ESTIMATE_FROM rows the count is cheap and
stays exact, so a small install (and SQLite, which keeps no such statistics) sees no difference."""

from __future__ import annotations

import math

from django.core.paginator import EmptyPage, Page, Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# Rows from which an unfiltered list's count is the planner's estimate: a COUNT(*) over fewer is a few ms.
ESTIMATE_FROM = 100_000
# How far past an estimate pages are still read (EstimatedCountPaginator.pages_within_margin): twice its rows.
ESTIMATE_MARGIN = 2.0


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
    changes), below it as often as above: page numbers and slices are therefore not capped at it. Any page
    number is served; a full page offers the next one, and a short page is the last (an empty one too: rows
    deleted since the table was analyzed). Capped, rows added since then (up to a tenth of the table) could
    never be shown: `?p=` past the estimate redirected to `?e=1`."""

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where and not queryset.query.is_sliced:
            estimate = table_rows_estimate(queryset)
            if estimate is not None and estimate >= ESTIMATE_FROM:
                self.estimated = True
                return estimate
        return super().count

    def validate_number(self, number) -> int:
        try:
            return super().validate_number(number)
        except EmptyPage:
            number = int(number)  # super() has parsed it already
            if not self.estimated or not 1 <= number <= self.pages_within_margin():
                raise
            return number  # past the estimate: the page itself says whether there is anything

    def pages_within_margin(self) -> int:
        """The last page number read past an estimate: twice the rows estimated (autovacuum analyzes a table once a
        tenth of it changed; twice covers one that doubled before it ran), and one page. A number beyond it is not
        read: its OFFSET would read the table up to it, and past a bigint it was a DataError (a 500)."""
        return math.ceil(self.count * ESTIMATE_MARGIN / self.per_page) + 1

    def page(self, number) -> Page:
        self.count  # noqa: B018 - sets `estimated`
        if not self.estimated:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page])
        if len(rows) == self.per_page:
            self.__dict__["num_pages"] = max(self.num_pages, number + 1)  # perhaps more: offer the next page
        else:
            self.__dict__["num_pages"] = number  # short (or empty): the last
        return self._get_page(rows, number, self)
