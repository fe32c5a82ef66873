"""Single-row lookups whose SQL the ORM writes once, not on every call.

Django compiles a QuerySet to SQL each time it is evaluated: cloning the query, resolving lookups,
running the compiler. For a probe of a unique index that is most of the cost of the whole lookup.
A `CompiledLookup` lets the ORM write the SQL (same columns, quoting and backend) the first time it
runs on a database alias, then binds new values to that text on every later call. Identical SQL text
is also what lets psycopg prepare the statement (server-side binding and DB_PREPARE_THRESHOLD), so
PostgreSQL stops parsing and planning it too.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from typing import Generic, TypeVar

from django.db import connections, models, router
from django.db.models import QuerySet

ModelT = TypeVar("ModelT", bound=models.Model)

_markers = itertools.count(1)


def _marker_for(field: models.Field) -> object:
    """A value that cannot occur among a query's fixed parameters, of a type the field accepts."""
    number = next(_markers)
    if isinstance(field, models.IntegerField | models.AutoField):
        return -(2**62) + number
    if isinstance(field, models.CharField | models.TextField):
        return f"\x1fcompiled-lookup-slot-{number}\x1f"
    raise TypeError(f"CompiledLookup cannot bind {type(field).__name__} ({field.name}); use the ORM for it")


class CompiledLookup(Generic[ModelT]):
    """`base.filter(field=value, ...).only(*columns)[:1]` for the named fields, compiled once per alias.

    Rows become model instances through `Model.from_db`, as the ORM's own iterator makes them (with
    `columns`, the other fields are deferred, as `.only()` leaves them).
    """

    def __init__(self, base: QuerySet[ModelT], fields: Iterable[str], *, columns: Iterable[str] | None = None) -> None:
        self.base = base
        self.model = base.model
        self.fields = tuple(fields)
        meta = self.model._meta
        self._field_of = {name: meta.pk if name == "pk" else meta.get_field(name) for name in self.fields}
        wanted = None if columns is None else {meta.get_field(name).name for name in columns}
        self._attnames = [
            field.attname
            for field in meta.concrete_fields
            if wanted is None or field.primary_key or field.name in wanted
        ]
        self._compiled: dict[str, tuple[str, list, list[tuple[int, str]], dict]] = {}
        self._lock = threading.Lock()

    def _compile(self, using: str) -> tuple[str, list, list[tuple[int, str]], dict]:
        markers = {name: _marker_for(field) for name, field in self._field_of.items()}
        queryset = self.base.using(using).filter(**markers).values_list(*self._attnames)[:1]
        compiler = queryset.query.get_compiler(using)
        sql, params = compiler.as_sql()
        # The backend's value converters (dates on SQLite, for example), as the ORM's iterator applies them.
        converters = compiler.get_converters([column for column, _, _ in compiler.select])
        params = list(params)
        slots = []
        for name, marker in markers.items():
            positions = [i for i, param in enumerate(params) if param == marker]
            if len(positions) != 1:
                raise ValueError(f"{name} is bound {len(positions)} times in {sql}")
            slots.append((positions[0], name))
        return sql, params, slots, converters

    def get(self, **values: object) -> ModelT | None:
        """The matching row as an instance, or None; `values` names exactly the compiled fields.

        None is refused: the ORM would turn it into IS NULL, which the compiled `=` cannot match.
        """
        if values.keys() != set(self.fields) or None in values.values():
            raise TypeError(f"expected non-null values for {self.fields}, got values for {sorted(values)}")
        using = router.db_for_read(self.model) or "default"
        compiled = self._compiled.get(using)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.setdefault(using, self._compile(using))
        sql, fixed, slots, converters = compiled
        params = fixed.copy()
        for position, name in slots:
            params[position] = self._field_of[name].get_prep_value(values[name])
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if converters:
            row = list(row)
            for position, (functions, expression) in converters.items():
                for convert in functions:
                    row[position] = convert(row[position], expression, connection)
        return self.model.from_db(using, self._attnames, row)
