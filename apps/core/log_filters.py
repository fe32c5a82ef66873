"""Log filters that keep request paths, which carry patient ids, out of the product's logs."""

from __future__ import annotations

import logging


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
