"""Log formatting and filters: request paths, which carry patient ids, stay out of the product's logs;
every line carries a UTC timestamp with its zone and the id of the request or task it belongs to."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# The request (or Celery task) the current thread or coroutine works for, so a line logged deep in a
# service can be joined to the access log line and the audit record of the same request.
_correlation_id: ContextVar[str | None] = ContextVar("log_correlation_id", default=None)


@contextmanager
def correlation_id(value: str) -> Iterator[None]:
    """Tag every log line written inside the block with `value`."""
    token = _correlation_id.set(value)
    try:
        yield
    finally:
        _correlation_id.reset(token)


# Tokens of the ids bound by task_prerun, by task id: postrun puts back what was there before, so a task run
# eagerly inside a request (CELERY_TASK_ALWAYS_EAGER, a test) hands the request its own id back.
_task_tokens: dict[str, Token] = {}


def bind_task_id(task_id: str | None = None, **_signal) -> None:
    """Celery's task_prerun: the lines a task logs carry its id."""
    if task_id:
        _task_tokens[task_id] = _correlation_id.set(task_id)


def unbind_task_id(task_id: str | None = None, **_signal) -> None:
    """Celery's task_postrun: the id in force before the task is back (none, in a worker)."""
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is None:
        return
    try:
        _correlation_id.reset(token)
    except ValueError:  # set in another context (a thread pool's): that context ends with the task anyway
        _correlation_id.set(None)


class CorrelationIdFilter(logging.Filter):
    """Adds `request_id` to every record: the current request's or task's id, "-" outside both."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _correlation_id.get() or "-"
        return True


class AccessLogFields(logging.Filter):
    """gunicorn's access records carry the request's atoms as a dict: the structured log gets the method,
    status, duration and request id as fields of their own; never the path or query, which can carry an MRN."""

    ATOMS = {"h": "remote_addr", "m": "method", "s": "status", "M": "duration_ms", "{x-request-id}o": "request_id"}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            for atom, field in self.ATOMS.items():
                if atom in record.args:
                    setattr(record, field, record.args[atom])
            if str(getattr(record, "status", "")).isdigit():
                record.status = int(record.status)
        return True


# The JSON formatter as settings.LOGGING and gunicorn's own log config both declare it.
JSON_FORMATTER = {
    "()": "apps.core.log_filters.StructuredFormatter",
    "format": "{asctime}{levelname}{name}{request_id}{message}",
    "style": "{",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}


def gunicorn_logconfig(log_format: str) -> dict:
    """gunicorn's own logs (error and access) in the format Django's processes use; {} keeps gunicorn's."""
    if log_format != "json":
        return {}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": []},
        "formatters": {"json": dict(JSON_FORMATTER)},
        "filters": {"correlation_id": {"()": CorrelationIdFilter}, "access_fields": {"()": AccessLogFields}},
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["correlation_id", "access_fields"],
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["json"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["json"], "propagate": False},
        },
    }


def _utc_iso(record: logging.LogRecord) -> str:
    # UTC with its zone: the hospital's local clock repeats an hour on the fall-back night, and pods in
    # several zones must sort into one timeline.
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# PostgreSQL writes the values of the row it refused into its error: a unique key ("Key (identifier_system,
# mrn)=(http://..., MRN-0042) already exists"), a whole failing row (names, birth date), a value of the wrong
# type ('invalid input syntax for type bigint: "MRN-0042"'), and COPY repeats the value, or the whole input
# line, in its CONTEXT ('COPY clinical_patient, line 3, column birth_date: "1980-13-45"'). psycopg puts that
# text in the exception, and a request that fails on it is logged with its traceback, the message twice
# (psycopg's and Django's). A value may hold ")", '"' or a line break, so each runs to the last of PostgreSQL's
# own words after it within its field (up to the next DETAIL/HINT/CONTEXT/QUERY/LINE n field, the next
# exception of a traceback, or the end of the text), else to that field's end.
#
# The filter runs on every log line, and some lines carry what a caller sent (Django logs a refused Host header
# whole, before any authentication), so the scan is linear: markers are found with str.find, each literal's next
# occurrence and each field's last terminator are remembered, and nothing is searched twice. (A regex with
# `.*?` up to a lookahead retried every "Key (" and ")=(" of a crafted header: 0.4 s of CPU for 8 KB.)
_DATABASE_VALUE_MARKERS = ("Key (", "ailing row contains (", "invalid input", "out of range", "COPY ")
_FIELD_ENDS = (
    "\nDETAIL:",
    "\nHINT:",
    "\nCONTEXT:",
    "\nQUERY:",
    "\nLINE ",  # "LINE 1: INSERT ...", checked for its number below
    "\n\nThe above exception",
    "\n\nDuring handling of the above exception",
    "\nTraceback (most recent call last):",
)
_KEY_ENDS = (
    ") already exists",
    ") is not present in table",
    ") is still referenced from table",
    ") is duplicated",
    ") conflicts with ",  # "... conflicts with existing key (mrn)=(MRN-1).": that key's value goes too
)
_KEY, _ROW, _INVALID, _DATETIME, _RANGE, _COPY = (
    "Key (",
    "ailing row contains (",  # "Failing row contains", "Partition key of the failing row contains"
    "invalid input ",  # "invalid input syntax for type date: "...", "invalid input value for enum ...: "..."
    'date/time field value out of range: "',
    'value "',  # 'value "99999999999" is out of range for type integer'
    "CONTEXT:  COPY ",
)


class _Scan:
    """Searches over one text that remember what they found: callers ask from positions that only grow, so each
    literal passes over the text about once, however many markers a crafted line repeats."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._next: dict[str, tuple[int, int]] = {}  # literal -> (searched from, first occurrence or len)
        self._last: dict[str, tuple[int, int, int]] = {}  # literal -> (from, to, last occurrence or -1)
        self._field_end = (0, -1)

    def next(self, literal: str, pos: int) -> int:
        """The first occurrence of `literal` at or after `pos`, or the text's length."""
        searched_from, found = self._next.get(literal, (0, -1))
        if not searched_from <= pos <= found:
            found = self.text.find(literal, pos)
            found = len(self.text) if found < 0 else found
            self._next[literal] = (pos, found)
        return found

    def last(self, literal: str, start: int, end: int) -> int:
        """The last occurrence of `literal` within text[start:end], or -1."""
        searched_from, searched_to, found = self._last.get(literal, (0, -1, -1))
        if searched_to != end or start < searched_from:
            found = self.text.rfind(literal, start, end)
            self._last[literal] = (start, end, found)
        return found if found >= start else -1

    def field_end(self, pos: int) -> int:
        """Where the PostgreSQL field (or the exception's text) holding `pos` ends."""
        searched_from, end = self._field_end
        if not searched_from <= pos <= end:
            end = min(self._line_field(pos), *(self.next(m, pos) for m in _FIELD_ENDS if m != "\nLINE "))
            self._field_end = (pos, end)
        return end

    def _line_field(self, pos: int) -> int:
        text = self.text
        while (at := self.next("\nLINE ", pos)) < len(text):
            digits = at + len("\nLINE ")
            while digits < len(text) and text[digits].isdigit():
                digits += 1
            if digits > at + len("\nLINE ") and text.startswith(":", digits):
                return at
            pos = at + 1
        return len(text)


def _withheld_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, replacement) for each value in `text`, in order and apart."""
    scan, pos, size = _Scan(text), 0, len(text)
    markers = (_KEY, _ROW, _INVALID, _DATETIME, _RANGE, _COPY)
    while True:
        at, marker = min((scan.next(marker, pos), marker) for marker in markers)
        if at >= size:
            return
        after, end = at + len(marker), scan.field_end(at)
        pos = at + 1  # where the scan goes on when this is no value after all
        if marker == _KEY:
            equals = scan.next(")=(", after)
            if equals >= end:
                continue
            start = equals + 3
            stop, ending = max((scan.last(e, start, end), e) for e in _KEY_ENDS)
            if stop < 0:
                yield start, end, "withheld)"
                pos = end
                continue
            yield start, stop, "withheld"
            pos = stop + len(ending)
            other = scan.next(")=(", pos) if ending == ") conflicts with " else end
            if other < end:
                stop = scan.last(")", other + 3, end)
                yield (other + 3, stop, "withheld") if stop >= 0 else (other + 3, end, "withheld)")
                pos = stop + 1 if stop >= 0 else end
        elif marker == _ROW:
            stop = scan.last(")", after, end)
            yield (after, stop, "withheld") if stop >= 0 else (after, end, "withheld)")
            pos = stop + 1 if stop >= 0 else end
        elif marker == _RANGE:
            stop = scan.last('" is out of range', after, end)
            if stop >= 0:
                yield after, stop, "withheld"
                pos = stop + 1
        else:
            if marker in (_INVALID, _COPY):  # the value follows the first ': "' on the marker's line
                quote = scan.next(': "', after)
                if quote >= scan.next("\n", after) or quote >= end:
                    continue
                if marker == _INVALID and not text.startswith(("syntax for ", "value for "), after):
                    continue
                after = quote + 3
            stop = scan.last('"', after, end)
            yield (after, stop, "withheld") if stop >= 0 else (after, end, 'withheld"')
            pos = stop + 1 if stop >= 0 else end


def redact_database_values(text: str) -> str:
    """`text` with the values a PostgreSQL error quotes replaced by "withheld" (the columns stay)."""
    if not any(marker in text for marker in _DATABASE_VALUE_MARKERS):
        return text
    pieces, pos = [], 0
    for start, end, replacement in _withheld_spans(text):
        pieces += (text[pos:start], replacement)
        pos = end
    return "".join(pieces) + text[pos:] if pieces else text


class PlainFormatter(logging.Formatter):
    """One line per record for people reading a terminal, with an unambiguous timestamp; the values a
    database error quotes (a patient's MRN, name, birth date) withheld from its message and traceback."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_iso(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact_database_values(super().format(record))


class StructuredFormatter(JsonFormatter):
    """One JSON object per record for log pipelines (Loki, Elasticsearch, Cloud Logging).

    Extra attributes become fields only when they are plain values: Django attaches the request object to
    some records, and its text is the raw path, which can carry a patient id. The values a database error
    quotes are withheld, as PlainFormatter does.
    """

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_iso(record)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {
            key: redact_database_values(value) if isinstance(value, str) else value
            for key, value in log_data.items()
            if _is_plain(value)
        }


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class RedactRequestPaths(logging.Filter):
    """Django writes the raw path of a failed request ("Internal Server Error: /api/v1/patients/4242/", a
    CSRF refusal on an admin page): the line names the route template and the request id instead, as the
    access log and the metrics do."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        if not path or not isinstance(record.args, tuple):
            return True
        escaped = path.encode("unicode_escape").decode("ascii")  # how django.utils.log passes it
        if path in record.args or escaped in record.args:
            match = getattr(request, "resolver_match", None)
            where = f"route {match.route}" if match is not None and match.route else "[path withheld]"
            where += f" (request {getattr(request, 'request_id', '-')})"
            record.args = tuple(where if arg in (path, escaped) else arg for arg in record.args)
        return True


class ClientErrorsWithoutTraceback(logging.Filter):
    """Django logs each SuspiciousOperation (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a disallowed Host, too many
    fields) under `django.security.*` with the whole traceback: about 50 lines a request, which any client can
    send in a loop to flood the log. These are the client's errors, answered 400: one line each."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security.") and record.exc_info:
            record.exc_info, record.exc_text = None, None
        return True
