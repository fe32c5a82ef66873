"""Gunicorn hooks: Prometheus multiprocess metrics must forget a worker that has exited, gunicorn's own error
log must not write request targets (a FHIR identifier search carries an MRN in its query), and the errors
gunicorn answers itself, before Django, have a JSON body like every other error of the API."""

import json
import logging
import os
import re
from pathlib import Path

from gunicorn import util

from apps.core.log_filters import gunicorn_logconfig

# LOG_FORMAT=json: gunicorn's error and access lines are JSON objects like the rest of the process's.
logconfig_dict = gunicorn_logconfig(os.environ.get("LOG_FORMAT", "plain"))
# The access line without the request line or the referer (gunicorn's default writes both: a FHIR identifier
# search's MRN, a patient id in a path) when a command turns the access log on and names no format of its own;
# the Procfile's and the image's --access-logformat say the same.
access_log_format = '%(h)s "%(m)s" %(s)s %(M)sms request=%({x-request-id}o)s'


class RedactRequestTargets(logging.Filter):
    """The access log's format already leaves paths out; this does the same for the error log's two
    messages that quote a request: a request line or header it cannot parse (what was wrong is kept, not
    what was sent) and an unhandled error (its URI)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        if record.msg.startswith("Error handling request"):
            record.msg, record.args = "Error handling request [target redacted]", ()
        elif record.msg.startswith("Invalid request from"):
            source, _, error = record.getMessage().partition(": ")
            kind = error.partition(":")[0]
            record.msg, record.args = f"{source}: {kind}: [target redacted]", ()
        return True


SERVER_ERROR_DETAILS = {
    400: "The request line or a header is malformed.",
    403: "The request was refused by the server's proxy rules.",
    414: "The request line is too long.",
    431: "The request's header fields are too large.",
}


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's `util.write_error`, with the body every error of the API has: `{"detail", "code"}`, not an
    HTML page. `mesg` is left out: it quotes what was sent (a request line with an MRN in its query)."""
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")  # "URI Too Long": uri_too_long
    detail = SERVER_ERROR_DETAILS.get(status_int, reason)
    body = json.dumps({"detail": detail, "code": code}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin1") + body)


def on_starting(server) -> None:
    # Before the workers fork: each inherits the filter and the error writer (gunicorn's workers call
    # `util.write_error` for a request they cannot parse: a bad request line or header, too long a line or
    # too many header bytes, and for an error raised outside the application).
    logging.getLogger("gunicorn.error").addFilter(RedactRequestTargets())
    util.write_error = write_json_error
    # Preload states left by this server's earlier life (killed before child_exit ran; in a container it is
    # PID 1 every time, and VAR_DIR outlives a restart): a new worker with an old pid is not still loading.
    for stale in (_var_dir() / "preload").glob(f"{os.getpid()}-*.json"):
        stale.unlink(missing_ok=True)


def _var_dir() -> Path:
    # The arbiter never loads Django's settings, so it finds the folder the way settings.py does.
    return Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var")


def post_worker_init(worker) -> None:
    # Django is set up by now (the worker loaded the WSGI application).
    from django.conf import settings

    if settings.INFERENCE_PRELOAD:
        from apps.inference.serving import preload

        preload.start()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    var_dir = _var_dir()
    prometheus = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(var_dir / "prometheus")
    multiprocess.mark_process_dead(worker.pid, path=prometheus)
    # Its inference preload state: a worker replaced after a crash is not a sibling still loading.
    (var_dir / "preload" / f"{server.pid}-{worker.pid}.json").unlink(missing_ok=True)
