"""Gunicorn hooks: Prometheus multiprocess metrics must forget a worker that has exited, and gunicorn's
own error log must not write request targets (a FHIR identifier search carries an MRN in its query)."""

import logging
import os
import re
from pathlib import Path

# gunicorn's messages that quote a request's target: a request line it cannot parse, an unhandled error.
_QUOTING_TARGETS = ("Invalid request from", "Error handling request")
_TARGET = re.compile(r"(?<![\w/])/[^\s'\"]*")


class RedactRequestTargets(logging.Filter):
    """The access log's format already leaves paths out; this does the same for the error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_QUOTING_TARGETS):
            record.msg, record.args = _TARGET.sub("[target redacted]", record.getMessage()), ()
        return True


def on_starting(server) -> None:
    # Before the workers fork: each inherits the filter.
    logging.getLogger("gunicorn.error").addFilter(RedactRequestTargets())


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    # The arbiter never loads Django's settings, so it finds the folder the way settings.py does.
    default = Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var") / "prometheus"
    multiprocess.mark_process_dead(worker.pid, path=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(default))
