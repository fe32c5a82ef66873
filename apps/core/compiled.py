"""Queries whose SQL the ORM writes once, not on every call.

Django compiles a QuerySet to SQL each time it is evaluated: cloning the query, resolving lookups,
running the compiler. For a probe of a unique index that is most of the cost of the whole lookup.
A `CompiledQuery` (and `CompiledLookup`, its single-row form) lets the ORM write the SQL (same
columns, quoting and backend) the first time it runs on a database alias, then binds new values to
that text on every later call. Identical SQL text is also what lets psycopg prepare the statement
(server-side binding and DB_PREPARE_THRESHOLD), so PostgreSQL stops parsing and planning it too.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Generic, TypeVar

from django.db import connections, models, router
from django.db.models import QuerySet

ModelT = TypeVar("ModelT", bound=models.Model)

_markers = itertools.count(1)


class _Bound:
    def __repr__(self) -> str:
        return "BOUND"


# `CompiledQuery(..., limit=BOUND)`: the page size is a bound parameter given on each call, so one SQL
# text serves every page size (a client stepping through sizes would otherwise fill a shape table).
BOUND = _Bound()
# Django writes LIMIT into the SQL text; this one, unlike any page size a caller asks for, is replaced by a
# parameter. A count of %-placeholders before it gives the parameter's position.
_LIMIT_MARKER = 987_654_321_123
_PLACEHOLDER = re.compile(r"%%|%s")


def _marker_for(field: models.Field) -> object:
    """A value that cannot occur among a query's fixed parameters, of a type the field accepts."""
    number = next(_markers)
    if isinstance(field, models.ForeignKey):
        return _marker_for(field.target_field)
    if isinstance(field, models.IntegerField | models.AutoField):
        return -(2**62) + number
    if isinstance(field, models.CharField | models.TextField):
        return f"\x1fcompiled-lookup-slot-{number}\x1f"
    if isinstance(field, models.DateTimeField):
        return datetime(2, 1, 1, tzinfo=UTC) + timedelta(microseconds=number)
    if isinstance(field, models.DateField):
        return date(2, 1, 1) + timedelta(days=number)
    raise TypeError(f"CompiledQuery cannot bind {type(field).__name__} ({field.name}); use the ORM for it")


class CompiledQuery(Generic[ModelT]):
    """`build(**slots)` as SQL the ORM writes once per database alias; each call binds new values.

    `slots` maps each value bound per call to the model field it is compared with (the field gives the
    marker's type and the value's database form). `build` must use every slot (once or more) and build
    the same query apart from them on every call. Rows become instances through `Model.from_db`, as
    the ORM's own iterator makes them (with `columns`, the other fields are deferred, as `.only()`).
    """

    def __init__(
        self,
        model: type[ModelT],
        build: Callable[..., QuerySet[ModelT]],
        slots: dict[str, str],
        *,
        columns: Iterable[str] | None = None,
        limit: int | _Bound | None = None,
    ) -> None:
        self.model = model
        self.build = build
        self.limit = limit
        meta = model._meta
        self._field_of = {slot: meta.pk if name == "pk" else meta.get_field(name) for slot, name in slots.items()}
        wanted = None if columns is None else {meta.get_field(name).name for name in columns}
        self._attnames = [
            field.attname
            for field in meta.concrete_fields
            if wanted is None or field.primary_key or field.name in wanted
        ]
        self._compiled: dict[str, tuple[str, list, list[tuple[int, str | None]], dict]] = {}
        self._lock = threading.Lock()

    def _compile(self, using: str) -> tuple[str, list, list[tuple[int, str | None]], dict]:
        markers = {slot: _marker_for(field) for slot, field in self._field_of.items()}
        queryset = self.build(**markers).using(using).values_list(*self._attnames)
        if self.limit is not None:
            queryset = queryset[: _LIMIT_MARKER if self.limit is BOUND else self.limit]
        compiler = queryset.query.get_compiler(using)
        sql, params = compiler.as_sql()
        params = list(params)
        slots = []
        if self.limit is BOUND:
            sql, position = _bind_limit(sql)
            params.insert(position, _LIMIT_MARKER)
            slots.append((position, None))
        # The backend's value converters (dates on SQLite, for example), as the ORM's iterator applies them.
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        connection = connections[using]
        # Each fixed parameter's positions by value, once: finding a slot's positions is then a lookup, so
        # compiling is linear in the parameters (a scan per slot was quadratic, and a search of a few hundred
        # dates held a core for minutes). Markers are ints, strings and dates, all hashable; an unhashable
        # parameter (a list, say) is never a marker.
        positions_of: dict[object, list[int]] = {}
        for i, param in enumerate(params):
            try:
                positions_of.setdefault(param, []).append(i)
            except TypeError:
                continue
        taken = {position for position, _ in slots}  # the bound LIMIT's
        for slot, marker in markers.items():
            # The ORM may have adapted the marker already (a datetime is text on SQLite).
            forms = (marker, self._field_of[slot].get_db_prep_value(marker, connection))
            positions = sorted({i for form in forms for i in positions_of.get(form, ()) if i not in taken})
            if not positions:
                raise ValueError(f"{slot} is not bound in {sql}")
            taken.update(positions)
            slots.extend((position, slot) for position in positions)  # a keyset condition repeats a value
        return sql, params, slots, converters

    def rows(self, *, limit: int | None = None, **values: object) -> list[ModelT]:
        """The matching rows as instances; `values` names exactly the slots, `limit` the page size of a
        query compiled with `limit=BOUND` (and only of one).

        None is refused: the ORM would turn it into IS NULL, which the compiled `=` cannot match.
        """
        if values.keys() != self._field_of.keys() or None in values.values():
            raise TypeError(f"expected non-null values for {tuple(self._field_of)}, got values for {sorted(values)}")
        if (self.limit is BOUND) != (limit is not None) or (limit is not None and limit < 1):
            raise TypeError(f"a limit of at least 1 goes with limit=BOUND and only with it, got {limit!r}")
        using = router.db_for_read(self.model) or "default"
        compiled = self._compiled.get(using)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.setdefault(using, self._compile(using))
        sql, fixed, slots, converters = compiled
        connection = connections[using]
        params = fixed.copy()
        for position, slot in slots:
            params[position] = (
                limit if slot is None else self._field_of[slot].get_db_prep_value(values[slot], connection)
            )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            fetched = cursor.fetchall()
        instances = []
        for row in fetched:
            if converters:
                row = list(row)
                for position, (functions, expression) in converters.items():
                    for convert in functions:
                        row[position] = convert(row[position], expression, connection)
            instances.append(self.model.from_db(using, self._attnames, row))
        return instances


def _bind_limit(sql: str) -> tuple[str, int]:
    """The SQL with its marker LIMIT as a placeholder, and that placeholder's position among the params."""
    literal = f"LIMIT {_LIMIT_MARKER}"
    if sql.count(literal) != 1:
        raise ValueError(f"cannot bind the LIMIT of {sql}")
    before, after = sql.split(literal)
    position = _PLACEHOLDER.findall(before).count("%s")
    return f"{before}LIMIT %s{after}", position


class CompiledLookup(CompiledQuery[ModelT]):
    """`base.filter(field=value, ...).only(*columns)[:1]` for the named fields, compiled once per alias."""

    def __init__(self, base: QuerySet[ModelT], fields: Iterable[str], *, columns: Iterable[str] | None = None) -> None:
        super().__init__(
            base.model, lambda **markers: base.filter(**markers), {name: name for name in fields},
            columns=columns, limit=1,
        )  # fmt: skip

    def get(self, **values: object) -> ModelT | None:
        """The matching row as an instance, or None; `values` names exactly the compiled fields."""
        found = self.rows(**values)
        return found[0] if found else None


class CompiledShapes:
    """The compiled queries of one query family, one per shape, at most `at_most` of them.

    A shape is whatever the SQL depends on besides the bound values (which filters are present, how
    many values each, sort; not the page size, which `BOUND` binds). Shapes come from requests, so the
    table is bounded: past it, the least recently used shape is dropped (compiled again if it comes
    back), so a client sending ever new shapes cannot keep the table full and every later shape on the
    ORM. With `at_most` 0, `get` answers None and the caller runs the ORM as it is.
    """

    def __init__(self, at_most: int) -> None:
        self.at_most = at_most
        self._queries: OrderedDict[object, CompiledQuery] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, shape: object, make: Callable[[], CompiledQuery]) -> CompiledQuery | None:
        with self._lock:
            query = self._queries.get(shape)
            if query is not None:
                self._queries.move_to_end(shape)
                return query
            if self.at_most < 1:
                return None
            query = self._queries[shape] = make()
            while len(self._queries) > self.at_most:
                self._queries.popitem(last=False)
            return query

    def __len__(self) -> int:
        return len(self._queries)

    def clear(self) -> None:
        with self._lock:
            self._queries.clear()
