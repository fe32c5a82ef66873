"""Admin changelists take plain comparisons in their query string, nothing else.

Django's admin passes any `field__lookup=value` in a changelist's URL to the queryset: a lookup whose error
shows only when the database runs the query (`?id__regex=(`, an invalid pattern; `?created_at__year=99999`, a
year PostgreSQL cannot cast) raised inside the template's iteration, past the admin's IncorrectLookupParameters
handling: a 500 and an error report for a typo or a probe. A lookup refused by `lookup_allowed` is Django's
DisallowedModelAdminLookup, a SuspiciousOperation: a 400, logged as one. What a value can get wrong with a plain
comparison (`?id=abc`, a date that is no date) fails when the queryset is built, which the admin already answers
with its "?e=1" redirect.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.contrib import admin
from django.contrib.admin import widgets
from django.core.exceptions import FieldDoesNotExist
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.utils import timezone

# Comparisons of a field with the value given, which the admin's own filters use (`__exact`, `__isnull`,
# `__gte`/`__lt` of a date filter, `__in`), plus the text matches an operator types by hand. No transform
# (`__year`, `__date`, `__lower`, a JSON key) and no pattern (`__regex`, `__iregex`): their errors come from the
# database, at render time.
PLAIN_LOOKUPS = frozenset(
    {
        "exact",
        "iexact",
        "in",
        "isnull",
        "gt",
        "gte",
        "lt",
        "lte",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "isempty",  # the admin's EmptyFieldListFilter parameter, consumed by the filter, never a query lookup
    }
)
# The parameters a date hierarchy sends; the admin turns them into a checked `__gte`/`__lt` range itself.
DATE_HIERARCHY_PARTS = frozenset({"year", "month", "day"})


def _split_lookup(model, lookup: str) -> tuple[list[str], list[str]] | None:
    """(the field path, what follows it) of `lookup` on `model`; None when its first part names no field (a
    custom filter's parameter, or a name the queryset refuses when it is built: not a lookup to judge here)."""
    parts = lookup.split(LOOKUP_SEP)
    path: list[str] = []
    for index, part in enumerate(parts):
        try:
            field = model._meta.pk if part == "pk" else model._meta.get_field(part)
        except FieldDoesNotExist:
            if not path:
                return None
            return path, parts[index:]
        path.append(part)
        if not getattr(field, "path_infos", None):  # not a relation: what follows is a lookup or a transform
            return path, parts[index + 1 :]
        model = field.path_infos[-1].to_opts.model
    return path, []


def plain_lookup(model_admin: admin.ModelAdmin, lookup: str) -> bool:
    """Whether `lookup` is a field path followed by at most one plain comparison (or a date hierarchy's part)."""
    split = _split_lookup(model_admin.model, lookup)
    if split is None:
        return True
    path, rest = split
    if not rest:
        return True
    if len(rest) != 1:
        return False
    if rest[0] in PLAIN_LOOKUPS:
        return True
    return rest[0] in DATE_HIERARCHY_PARTS and LOOKUP_SEP.join(path) == model_admin.date_hierarchy


# What a date hierarchy's part may be: ASCII digits naming a year the admin can also step past (it asks for
# the next year's first day: 9999 overflows), a month, a day. Anything else raised ValueError or OverflowError
# past the admin's own check (`?at__year=9999`, `?at__year=99999999999999999999`): a 500.
DATE_HIERARCHY_RANGES = {"year": (1, 9998), "month": (1, 12), "day": (1, 31)}


def date_hierarchy_value_allowed(model_admin: admin.ModelAdmin, lookup: str, value: object) -> bool:
    """Whether `value` may be given for `lookup`: any value unless `lookup` is a part of the admin's date
    hierarchy (`<date_hierarchy>__year`, `__month`, `__day`), which must be an integer in that part's range. A
    month's day that does not exist (February 30th) the admin answers itself, with its "?e=1" redirect."""
    field, _, part = lookup.rpartition(LOOKUP_SEP)
    if not model_admin.date_hierarchy or field != model_admin.date_hierarchy or part not in DATE_HIERARCHY_RANGES:
        return True
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 8:
        return False
    low, high = DATE_HIERARCHY_RANGES[part]
    return low <= int(value) <= high


def date_hierarchy_range(field: str, params) -> dict[str, str] | None:
    """The `<field>__gte`/`<field>__lt` range (what a DateFieldListFilter sends) standing for a date hierarchy's
    `<field>__year`, `__month`, `__day` in `params`, in the current time zone as the hierarchy read them; None
    when there are none, or they are no date (those stay refused). For a list whose hierarchy was replaced by
    a date filter: its old links and bookmarks keep working."""
    parts = {part: params.get(f"{field}{LOOKUP_SEP}{part}") for part in ("year", "month", "day")}
    if parts["year"] is None or (parts["day"] is not None and parts["month"] is None):
        return None
    values = {}
    for part, value in parts.items():
        if value is None:
            continue
        low, high = DATE_HIERARCHY_RANGES[part]
        if not (value.isascii() and value.isdigit() and len(value) <= 8 and low <= int(value) <= high):
            return None
        values[part] = int(value)
    year, month, day = values["year"], values.get("month"), values.get("day")
    try:
        start = date(year, month or 1, day or 1)
    except ValueError:  # February 30th
        return None
    if day is not None:
        end = start + timedelta(days=1)
    elif month is not None:
        end = date(year + month // 12, month % 12 + 1, 1)
    else:
        end = date(year + 1, 1, 1)

    def aware(day_: date) -> str:
        return str(timezone.make_aware(datetime.combine(day_, time.min)))

    return {f"{field}{LOOKUP_SEP}gte": aware(start), f"{field}{LOOKUP_SEP}lt": aware(end)}


def _fk_popup_lookup(model_admin: admin.ModelAdmin, lookup: str, value: str) -> bool:
    # The raw-id widget's popup filters by a foreign key's limit_choices_to, whatever lookups that names.
    for fk_lookup in model_admin.model._meta.related_fkey_lookups:
        if callable(fk_lookup):
            fk_lookup = fk_lookup()
        if (lookup, value) in widgets.url_params_from_lookup_dict(fk_lookup).items():
            return True
    return False


class PlainLookupsAdmin:
    """A ModelAdmin mixin (put it first among the bases): a changelist lookup other than a plain comparison is
    a 400 (DisallowedModelAdminLookup), not a 500 when the database trips on it; so is a date hierarchy's part
    that is no integer in its range. Django's own rule (relations
    only through a list filter) still applies after this one."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if not plain_lookup(self, lookup) and not _fk_popup_lookup(self, lookup, value):
            return False
        if not date_hierarchy_value_allowed(self, lookup, value):
            return False
        return super().lookup_allowed(lookup, value, request)
