"""FHIR R4 search-parameter parsing. Pure functions: every bad value raises FhirParamError (-> 400)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q

MAX_COUNT = 1000
MAX_ROW_ID = 2**63 - 1  # a bigint's, as the tables' ids are (DEFAULT_AUTO_FIELD)
# ASCII digits only ("²".isdigit() is True, int("²") fails), as the server writes ids: no leading zero, since
# FHIR ids are strings and "007" is not the id "7".
ID_PATTERN = r"[1-9][0-9]{0,17}"
_ID = re.compile(ID_PATTERN)


class FhirParamError(ValueError):
    """A search parameter the server cannot honour; becomes an OperationOutcome with 400."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Token:
    system: str | None  # None: any system; "": explicitly no system
    code: str


def parse_token(parameter: str, raw: str) -> Token:
    """`[system]|[code]`, `|[code]` or `[code]`."""
    if not raw or len(raw) > 300:
        raise FhirParamError(parameter, "expected a token: [system|]code")
    if "|" in raw:
        system, _, code = raw.partition("|")
        if not code or "|" in code:
            raise FhirParamError(parameter, "expected a token: [system|]code")
        return Token(system=system, code=code)
    return Token(system=None, code=raw)


# Alternatives in one value: each is a slot of the search's compiled SQL, and its count part of the shape.
MAX_ALTERNATIVES = 50


def split_or(parameter: str, raw: str) -> list[str]:
    r"""A parameter's value as FHIR reads it: a comma-separated list of alternatives (OR), in which `\,` is a
    literal comma and `\\` a backslash. Other escapes (`\|`, `\$`) stay as they are, for the value's parser."""
    parts, current, chars = [], [], iter(raw)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            current.append(escaped if escaped in (",", "\\") else char + escaped)
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    if any(not part for part in parts):
        raise FhirParamError(parameter, "an empty value in a comma-separated list")
    if len(parts) > MAX_ALTERNATIVES:
        raise FhirParamError(parameter, f"at most {MAX_ALTERNATIVES} comma-separated values")
    return parts


def parse_tokens(parameter: str, raw: str) -> list[Token]:
    """A comma-separated OR list of tokens."""
    return [parse_token(parameter, part) for part in split_or(parameter, raw)]


def parse_reference(parameter: str, raw: str, resource_type: str) -> int:
    """`123` or `Patient/123` -> 123."""
    value = raw[len(resource_type) + 1 :] if raw.startswith(f"{resource_type}/") else raw
    if not _ID.fullmatch(value):
        raise FhirParamError(parameter, f"expected a {resource_type} id or reference ({resource_type}/<id>)")
    return int(value)


def parse_count(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,7}", raw):
        raise FhirParamError("_count", "expected a whole number")
    count = int(raw)
    if not 1 <= count <= MAX_COUNT:
        raise FhirParamError("_count", f"must be between 1 and {MAX_COUNT}")
    return count


_DATE_RE = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?"
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,  # \d would match any script's digits ("٢٠٢٤"), which int() then reads as 2024
)
SUPPORTED_DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
START_OF_CALENDAR, END_OF_CALENDAR = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
_EXACT_DATE = re.compile(r"(eq)?\d{4}-\d{2}-\d{2}", re.ASCII)


def parse_date(parameter: str, raw: str) -> tuple[str, datetime, datetime]:
    """A prefixed FHIR date (`ge2024-03`, `2024-03-05T10:00:00Z`) -> (prefix, start, end) in UTC.

    The value stands for the whole interval its precision implies: `2024-03` is all of March. A value without a
    time (a year, month or day) is the hospital's (settings.TIME_ZONE), as FHIR has servers assume their local
    time where a date has no zone: `2024-05-03` on a New York ward is its day, 04:00Z to 04:00Z, not UTC's.
    """
    match = _DATE_RE.match(raw or "")
    if not match:
        raise FhirParamError(parameter, "expected [prefix]YYYY[-MM[-DD[Thh:mm[:ss][Z|+hh:mm]]]]")
    prefix = match["prefix"] or "eq"
    if match["time"] and not match["tz"]:
        raise FhirParamError(parameter, "a date with a time needs a time zone (Z or +hh:mm)")
    try:
        year, month, day = int(match["year"]), int(match["month"] or 1), int(match["day"] or 1)
        start_day = date(year, month, day)
        if match["time"]:
            tz = "+00:00" if match["tz"] == "Z" else match["tz"]
            start = datetime.fromisoformat(f"{start_day.isoformat()}T{match['time']}{tz}").astimezone(UTC)
        else:
            start = _local_midnight(start_day, START_OF_CALENDAR)
    except (ValueError, OverflowError) as exc:
        raise FhirParamError(parameter, f"not a real date or time: {raw!r}") from exc
    if match["time"]:
        try:
            end = start + _time_precision(match["time"])
        except OverflowError:  # the period ends with the calendar (9999-12-31)
            end = END_OF_CALENDAR
    else:
        if match["day"]:
            end_day = start_day + timedelta(days=1) if start_day < date.max else None
        elif match["month"]:
            end_day = date(year + month // 12, month % 12 + 1, 1) if (year, month) < (9999, 12) else None
        else:
            end_day = date(year + 1, 1, 1) if year < 9999 else None
        end = END_OF_CALENDAR if end_day is None else _local_midnight(end_day, END_OF_CALENDAR)
    if prefix == "ap":
        start, end = _approximately(start, end)
    return prefix, start, end


def _time_precision(clock: str) -> timedelta:
    """The period a time of day names: its last digit's unit (`10:00` a minute, `10:00:00` a second,
    `10:00:00.5` a tenth of one, `10:00:00.500000` a microsecond)."""
    if "." in clock:
        return timedelta(microseconds=10 ** (6 - len(clock.partition(".")[2])))
    return timedelta(seconds=1) if clock.count(":") == 2 else timedelta(minutes=1)


def _local_midnight(day: date, beyond: datetime) -> datetime:
    """The instant the hospital's `day` begins, in UTC; `beyond` where that falls outside the calendar."""
    try:
        return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.TIME_ZONE)).astimezone(UTC)
    except OverflowError:
        return beyond


def _approximately(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """`ap`: the period widened on each side by a tenth of its distance from now, as FHIR recommends
    (ap2024-05-01 asked in 2026 reaches about 2.4 months either way), and never narrower than the period."""
    now = datetime.now(UTC)
    margin = max(abs(now - start), abs(now - end)) / 10
    try:
        start = start - margin
    except OverflowError:
        start = START_OF_CALENDAR
    try:
        end = end + margin
    except OverflowError:
        end = END_OF_CALENDAR
    return start, end


# What each prefix asks of a target, as FHIR defines it: an OR of ANDs of (which end of the target, lookup,
# bound of the searched period), the bounds being the start of the period the value names and its end
# (exclusive; `ap` widened both). A bound of None: the target's end is missing.
#
# A target with one instant (Observation.effective) has both ends there. A Period (Encounter.period) runs
# from its start to its end, and one without an end is ongoing: `date=ge2024-05-01` finds a stay admitted in
# April and not yet discharged, `eq` only periods wholly inside the day, `ne` the others.
_Term = tuple[str, str, str | None]
_DATE_PREFIX_TERMS: dict[str, tuple[tuple[_Term, ...], ...]] = {
    "eq": ((("start", "gte", "start"), ("end", "lt", "end")),),
    "ne": ((("start", "lt", "start"),), (("end", "isnull", None),), (("end", "gte", "end"),)),
    "gt": ((("end", "isnull", None),), (("end", "gte", "end"),)),
    "ge": ((("end", "isnull", None),), (("end", "gte", "start"),)),
    "lt": ((("start", "lt", "start"),),),
    "le": ((("start", "lt", "end"),),),
    "sa": ((("start", "gte", "end"),),),
    "eb": ((("end", "lt", "start"),),),
    "ap": ((("start", "lt", "end"), ("end", "isnull", None)), (("start", "lt", "end"), ("end", "gte", "start"))),
}
DATE_PREFIX_BOUNDS = {
    prefix: tuple(sorted({bound for terms in either for _, _, bound in terms if bound}, key=("start", "end").index))
    for prefix, either in _DATE_PREFIX_TERMS.items()
}


def date_condition(field: str, prefix: str, start: object = None, end: object = None, *, end_field: str = "") -> Q:
    """One `date=` value as a condition on an instant `field`, or on the period from `field` to `end_field`,
    given the bounds its prefix uses."""
    bounds = {"start": start, "end": end}
    condition = Q()
    for terms in _DATE_PREFIX_TERMS[prefix]:
        if not end_field and any(bound is None for _, _, bound in terms):
            continue  # an instant is never missing its end
        both = Q()
        for side, lookup, bound in terms:
            column = end_field if side == "end" and end_field else field
            both &= Q(**{f"{column}__isnull": True}) if bound is None else Q(**{f"{column}__{lookup}": bounds[bound]})
        condition |= both
    return condition


def date_filter(field: str, parameter: str, raws: list[str], *, end_field: str = "") -> Q:
    """AND of every `date=` given (`date=ge2024-01-01&date=le2024-01-31` is January), each one an OR of
    its comma-separated values (`date=2024-01-05,2024-02-05`: either day)."""
    condition = Q()
    for raw in raws:
        either = Q()
        for part in split_or(parameter, raw):
            prefix, start, end = parse_date(parameter, part)
            either |= date_condition(field, prefix, start, end, end_field=end_field)
        condition &= either
    return condition


def is_exact_date(raw: str) -> bool:
    """`YYYY-MM-DD` or `eqYYYY-MM-DD`: one whole day, which a search can compare for equality."""
    return bool(_EXACT_DATE.fullmatch(raw or ""))


def parse_birthdate(raw: str) -> date:
    if not _EXACT_DATE.fullmatch(raw or ""):
        raise FhirParamError("birthdate", "expected an exact date: YYYY-MM-DD")
    try:  # a day, not an instant: no zone applies
        return date.fromisoformat(raw.removeprefix("eq"))
    except ValueError as exc:
        raise FhirParamError("birthdate", f"not a real date: {raw!r}") from exc


_BIRTHDATE = re.compile(
    r"(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?", re.ASCII
)


def birthdate_condition(raw: str, field: str = "birth_date") -> Q:
    """A prefixed, possibly partial `birthdate` (`ge1970`, `1970-05`, `lt1980-01-01`) as a condition on a
    DateField. A birth date is a day and the value the period its precision names, both without a zone; day
    against period, FHIR's prefixes come down to these comparisons with the period's first day and the
    first day after it (None: past the calendar's end)."""
    match = _BIRTHDATE.fullmatch(raw or "")
    if not match:
        raise FhirParamError("birthdate", "expected [prefix]YYYY[-MM[-DD]], a date without a time")
    prefix, year, month = match["prefix"] or "eq", int(match["year"]), int(match["month"] or 1)
    try:
        start = date(year, month, int(match["day"] or 1))
    except ValueError as exc:
        raise FhirParamError("birthdate", f"not a real date: {raw!r}") from exc
    if match["day"]:
        end = start + timedelta(days=1) if start < date.max else None
    elif match["month"]:
        end = date(year + month // 12, month % 12 + 1, 1) if (year, month) < (9999, 12) else None
    else:
        end = date(year + 1, 1, 1) if year < 9999 else None
    if prefix == "ap":
        widened = _approximately(datetime.combine(start, time.min, UTC),
                                 datetime.combine(end, time.min, UTC) if end else END_OF_CALENDAR)  # fmt: skip
        start = widened[0].date()
        end = None if widened[1] >= END_OF_CALENDAR - timedelta(days=1) else widened[1].date() + timedelta(days=1)
    nothing = Q(pk__in=[])
    from_start = Q(**{f"{field}__gte": start})
    before_start = Q(**{f"{field}__lt": start})
    from_end = Q(**{f"{field}__gte": end}) if end else nothing
    before_end = Q(**{f"{field}__lt": end}) if end else ~nothing
    return {
        "eq": from_start & before_end, "ap": from_start & before_end, "ne": before_start | from_end,
        "gt": from_end, "sa": from_end, "ge": from_start, "lt": before_start, "eb": before_start, "le": before_end,
    }[prefix]  # fmt: skip


# --- keyset cursors -------------------------------------------------------------------------------
# A cursor is `<values>.<MAC>`: the ordering values of the page's last row (JSON, urlsafe base64) and an
# HMAC-SHA256 of them and of the search they page (`search_binding`), so the server reads only cursors it
# issued, and each only on its own search: a hand-made one ([1], [-10**20], an id past bigint) is refused
# before any of its values reaches a query, and so is one taken from another search (another patient, code or
# sort), which paged that search's rows from a place in another's, silently wrong. The key is derived from
# CACHE_KEY_SECRET, as the cache's keys are; rotating it ends the cursors then open (their searches are asked
# again).
_CURSOR_MAC_BYTES = 16
# What a search's pages may differ in while being one search: the page size (a keyset cursor holds in any),
# the format, and the cursor and the posted search's key themselves (its parameters, restored, are bound).
UNBOUND_PARAMS = frozenset({"_count", "_cursor", "_format", "_pretty", "_search", "_summary"})


def search_binding(resource_type: str, params) -> str:
    """The search a cursor pages, in one spelling: the resource type and its parameters but UNBOUND_PARAMS,
    sorted, each one's values sorted (a repeated `date` is a range whichever comes first). Empty for a search
    without any (`Patient?_count=10`)."""
    bound = sorted((name, sorted(params.getlist(name))) for name in params if name not in UNBOUND_PARAMS)
    return f"{resource_type}?{json.dumps(bound, ensure_ascii=True)}" if bound else ""


def _cursor_mac(payload: str, search: str) -> str:
    key = hmac.digest(settings.CACHE_KEY_SECRET.encode(), b"controlplane fhir cursor", "sha256")
    # A search without parameters signs the values alone, as every cursor was before searches were bound.
    signed = f"{payload}\n{search}" if search else payload
    mac = hmac.digest(key, signed.encode(), "sha256")[:_CURSOR_MAC_BYTES]
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def encode_cursor(values: list, search: str = "") -> str:
    """A cursor after `values`, for the search `search_binding` spells as `search`."""
    raw = json.dumps([v.isoformat() if isinstance(v, datetime | date) else v for v in values]).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{payload}.{_cursor_mac(payload, search)}"


def decode_cursor(raw: str, length: int | tuple[int, ...], search: str = "") -> list:
    """The values of a cursor the server issued for this search (`length` values, or one of the lengths: a cursor
    the previous release issued); any other is a FhirParamError (400)."""
    payload, _, mac = raw.partition(".")
    if not (payload.isascii() and mac.isascii()) or not hmac.compare_digest(mac, _cursor_mac(payload, search)):
        raise FhirParamError(
            "_cursor", "not a cursor this server issued for this search: follow the next link of the search itself"
        )
    try:
        padded = payload + "=" * (-len(payload) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise FhirParamError("_cursor", "not a cursor this server issued") from exc
    # JSON's true and false are ints to Python (True == 1): the server never issues them.
    if (
        not isinstance(values, list)
        or len(values) not in ((length,) if isinstance(length, int) else length)
        or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values)
    ):
        raise FhirParamError("_cursor", "not a cursor this server issued")
    return values


def keyset_after(ordering: list[str], values: list) -> Q:
    """Rows strictly after `values` in `ordering` ('-field' descending): (a > x) or (a = x and b > y) ..."""
    condition = Q()
    for position, field in enumerate(ordering):
        name = field.lstrip("-")
        step = Q(**{f"{name}__{'lt' if field.startswith('-') else 'gt'}": values[position]})
        for earlier, value in zip(ordering[:position], values[:position], strict=True):
            step &= Q(**{earlier.lstrip("-"): value})
        condition |= step
    return condition
