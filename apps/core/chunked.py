"""Request bodies sent with `Transfer-Encoding: chunked` (clients that stream their body, some proxies).

Django reads a WSGI body only as far as `CONTENT_LENGTH` says. Gunicorn de-chunks such a body but sets no
length, so Django read none: a filtered search posted chunked (`POST /fhir/Patient/_search`,
`/api/v1/patients/window/`) lost its filters and answered every patient. The body is read here, up to the
largest body the product accepts, and its length set; a longer one is refused (413) before Django runs."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable

from django.conf import settings

# A body that is no upload (JSON, a form) may be this long; Django's own DATA_UPLOAD_MAX_MEMORY_SIZE checks
# the same bodies once they have a length. No view of the product takes a file.
DEFAULT_LIMIT = 2_621_440


def chunked_body_limit() -> int:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or DEFAULT_LIMIT


class ChunkedBodyLength:
    """WSGI middleware: gives a chunked request body the `CONTENT_LENGTH` Django needs to read it."""

    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        encoding = environ.get("HTTP_TRANSFER_ENCODING", "")
        if "chunked" in encoding.lower() and not environ.get("CONTENT_LENGTH"):
            limit = chunked_body_limit()
            body = environ["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return _too_large(start_response, limit)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.application(environ, start_response)


def _too_large(start_response: Callable, limit: int) -> list[bytes]:
    body = json.dumps(
        {"detail": f"The request body is larger than {limit} bytes.", "code": "request_too_large"}
    ).encode()
    start_response(
        "413 Request Entity Too Large",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
    )
    return [body]
