"""Log formatting and filters: request paths, which carry patient ids, stay out of the product's logs;
every line carries a UTC timestamp with its zone and the id of the request or task it belongs to."""

from __future__ import annotations

import logging
import re
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
# type ('invalid input syntax for type bigint: "MRN-0042"'). psycopg puts that text in the exception, and a
# request that fails on it is logged with its traceback, the message twice (psycopg's and Django's). Each value
# runs to PostgreSQL's own words after it, else to the end of its line: a value may hold ")" or '"' itself.
_DATABASE_VALUES = re.compile(
    r"(?P<key>Key \(.*?\)=)\(.*?\)"
    r"(?=(?: already exists| is not present in table| is still referenced from table| conflicts with)|\.?$)"
    r"|(?P<row>Failing row contains )\(.*\)"
    r'|(?P<quoted>(?:invalid input (?:syntax|value) for [^:\n]*|date/time field value out of range): )".*"'
    r'|(?P<range>value )".*"(?= is out of range)',
    re.MULTILINE,
)
_DATABASE_VALUE_MARKERS = ("Key (", "Failing row", "invalid input", "out of range")


def _withheld(match: re.Match) -> str:
    if match["key"] or match["row"]:
        return f"{match['key'] or match['row']}(withheld)"
    return f'{match["quoted"] or match["range"]}"withheld"'


def redact_database_values(text: str) -> str:
    """`text` with the values a PostgreSQL error quotes replaced by "withheld" (the columns stay)."""
    if not any(marker in text for marker in _DATABASE_VALUE_MARKERS):
        return text
    return _DATABASE_VALUES.sub(_withheld, text)


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
