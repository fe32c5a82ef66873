"""Request bodies sent with `Transfer-Encoding: chunked` (clients that stream their body, some proxies).

Django reads a WSGI body only as far as `CONTENT_LENGTH` says. Gunicorn de-chunks such a body but sets no
length, so Django read none: a filtered search posted chunked (`POST /fhir/Patient/_search`,
`/api/v1/patients/window/`) lost its filters and answered every patient. The body is read here, up to the
largest body the product accepts, and its length set; a longer one is refused (413) before Django runs, with the
CORS headers django-cors-headers would have added (a browser app reads the 413, not an opaque network error)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse

# A body that is no upload (JSON, a form) may be this long; Django's own DATA_UPLOAD_MAX_MEMORY_SIZE checks
# the same bodies once they have a length. No view of the product takes a file.
DEFAULT_LIMIT = 2_621_440
CORS_MIDDLEWARE = "corsheaders.middleware.CorsMiddleware"


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
                return _too_large(start_response, limit, _cors_headers(lambda: WSGIRequest(environ)))
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.application(environ, start_response)


def too_large_detail(limit: int | None = None) -> str:
    """The words of every 413 for a body past the limit: chunked, or past Django's check with a Content-Length."""
    return f"The request body is larger than {limit or chunked_body_limit()} bytes."


def _too_large_body(limit: int) -> bytes:
    return json.dumps({"detail": too_large_detail(limit), "code": "request_too_large"}).encode()


def _cors_headers(build_request: Callable[[], HttpRequest]) -> list[tuple[str, str]]:
    """The headers CorsMiddleware (where installed: CORS_ALLOWED_ORIGINS set) adds to an answer to the request: the
    Access-Control-* ones for an allowed origin on the token APIs, and `Vary: origin`. A 413 answered here never
    reached it, and without them a browser app saw a network error instead of why. The request is built only
    here: building an ASGI one decodes its query string, and one that is not UTF-8 raised instead of the 413."""
    if CORS_MIDDLEWARE not in settings.MIDDLEWARE:
        return []
    try:
        request = build_request()
    except UnicodeDecodeError:  # Django answers such a query 400 itself; its 413 goes without CORS headers
        return []
    from corsheaders.middleware import CorsMiddleware

    response = HttpResponse()
    del response["Content-Type"]
    CorsMiddleware(lambda _request: response).add_response_headers(request, response)
    return list(response.items())


def _too_large(start_response: Callable, limit: int, cors: list[tuple[str, str]]) -> list[bytes]:
    body = _too_large_body(limit)
    start_response(
        "413 Request Entity Too Large",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close"), *cors],
    )
    return [body]


class AsgiChunkedBodyLength:
    """ASGI middleware, the same for the live process (uvicorn), whose port serves the whole API under `make run`:
    Django's ASGI request takes its length from the `content-length` header too, and DRF reads no body without
    one. The body is gathered here up to the limit and handed on with its length."""

    def __init__(self, application: Callable) -> None:
        self.application = application

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not _chunked_without_length(scope.get("headers", [])):
            return await self.application(scope, receive, send)
        limit, parts, size = chunked_body_limit(), [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # the client left before its body ended: nothing to answer
            part = message.get("body", b"")
            size += len(part)
            if size > limit:
                return await _send_too_large(send, limit, _cors_headers(lambda: ASGIRequest(scope, io.BytesIO())))
            parts.append(part)
            if not message.get("more_body", False):
                break
        body = b"".join(parts)
        scope = {**scope, "headers": [*scope["headers"], (b"content-length", str(len(body)).encode())]}
        handed_on = False

        async def receive_body() -> dict:
            nonlocal handed_on
            if handed_on:
                return await receive()  # the disconnect, when it comes
            handed_on = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.application(scope, receive_body, send)


def _chunked_without_length(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name.lower(): value for name, value in headers}
    return b"chunked" in names.get(b"transfer-encoding", b"").lower() and b"content-length" not in names


async def _send_too_large(send: Callable, limit: int, cors: list[tuple[str, str]]) -> None:
    body = _too_large_body(limit)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in cors]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
