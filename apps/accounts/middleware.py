"""A bearer token of ours in a URL is refused on every path, before any view runs.

BearerTokenAuthentication refused one only on the DRF views it guards: the API root, the docs and schema, FHIR's
metadata, /metrics and the probes answered 200 (or an unrelated 400) to a URL carrying a live token, and went on
to write it into access logs, proxies and browser history without telling the client to rotate it."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, unquote_plus

from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.accounts.services import TOKEN_PREFIX

URL_CREDENTIAL_MESSAGE: str = (
    "Send the token in the Authorization header, never in a URL (URLs are kept in logs, proxies and browser "
    "history): this one may have been exposed, rotate it."
)

# Our token's shape anywhere in the decoded URL: the prefix, the 8 hex digits of its public part, the 43
# characters of its secret (a header copied in, "Authorization=Bearer+cpk_..."; "?x=Bearercpk_..." glued to a
# word). That shape is specific enough to need no boundary before it. A token cut short (20 characters of its
# secret or more) counts too where the prefix starts a word: a value that merely contains the prefix, an opaque
# paging key say, is not one.
_TOKEN_SHAPE = re.compile(
    rf"{TOKEN_PREFIX}_[0-9a-f]{{8}}_[A-Za-z0-9_-]{{43}}|(?<![0-9A-Za-z]){TOKEN_PREFIX}_[0-9a-f]{{8}}_[A-Za-z0-9_-]{{20,}}"
)
# Percent-decodings tried, each of the last one's text: a token encoded once, twice, three times (a client or a
# proxy re-encoding what it was given) is still ours. Bounded: a fourth layer is no client's accident.
_DECODE_ROUNDS = 4
# RFC 6750's query parameter: whatever it carries, it is meant as a bearer token.
_ACCESS_TOKEN_PARAMETER = "access_token"  # noqa: S105 - a parameter name
# The names clients put a credential under: under one of them, a value that starts as ours does (a token cut
# short, or mangled by an encoder) is one too.
_CREDENTIAL_PARAMETERS = frozenset(
    {
        "token",
        "auth",
        "auth_token",
        "authorization",
        "bearer",
        "bearer_token",
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "key",
        "jwt",
        "id_token",
        "refresh_token",
        "client_secret",
    }
)
_OUR_PREFIX = re.compile(rf"^(?:bearer\s+)?{TOKEN_PREFIX}_", re.IGNORECASE)


def _shaped_token_in(text: str, decode: Callable[[str], str]) -> bool:
    """Whether `text`, or any of its first few percent-decodings, holds a token of our shape."""
    for _ in range(_DECODE_ROUNDS):
        decoded = decode(text)
        if _TOKEN_SHAPE.search(decoded):
            return True
        if decoded == text:
            return False
        text = decoded
    return False


def token_in_path(path: str) -> bool:
    """Whether a (once-decoded) request path carries one of our tokens: `/api/v1/<token>/` answered the DEBUG
    404 page, which echoes the path. Cheap first: no regex unless the prefix, or an escape, is in it."""
    if TOKEN_PREFIX not in path and "%" not in path:
        return False
    return bool(_TOKEN_SHAPE.search(path)) or _shaped_token_in(path, unquote)


def token_in_query(query: str) -> bool:
    """Whether a query string carries one of our bearer tokens, under any name or none."""
    if not query:
        return False
    if _shaped_token_in(query, unquote_plus):
        return True
    decoded = unquote_plus(query)
    if TOKEN_PREFIX not in decoded.lower() and _ACCESS_TOKEN_PARAMETER not in decoded.lower():
        return False  # the common case: nothing of ours, no parameter parsed
    for name, value in parse_qsl(query, keep_blank_values=True):
        name = name.strip().lower()
        if name == _ACCESS_TOKEN_PARAMETER and value:
            return True
        if name in _CREDENTIAL_PARAMETERS and _OUR_PREFIX.match(unquote_plus(value).strip()):
            return True
    return False


def token_in_url_response(request: HttpRequest) -> HttpResponse:
    """401 `token_in_url`, as the API under the path writes its errors (FHIR: an OperationOutcome naming the
    code in its issue's details), JSON everywhere else: the probes and /metrics are read by programs too."""
    if request.path_info.startswith("/fhir/"):
        issue = {
            "severity": "error",
            "code": "security",
            "details": {"coding": [{"code": "token_in_url"}], "text": URL_CREDENTIAL_MESSAGE},
            "diagnostics": URL_CREDENTIAL_MESSAGE,
        }
        response: HttpResponse = JsonResponse(
            {"resourceType": "OperationOutcome", "issue": [issue]}, status=401, content_type="application/fhir+json"
        )
    else:
        response = JsonResponse({"detail": URL_CREDENTIAL_MESSAGE, "code": "token_in_url"}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="api", error="invalid_request"'
    response["Cache-Control"] = "no-store"
    return response


class TokenInUrlMiddleware:
    """Refuses (401 `token_in_url`) any request whose query string or path carries one of our tokens, whatever
    the method or the Authorization header beside it. Early: no view, cache or audit record sees the URL. The
    hot path pays one truthiness test (most requests have no query string) and two substring tests of the
    path."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING")
        if (query and token_in_query(query)) or token_in_path(request.path_info):
            return token_in_url_response(request)
        return self.get_response(request)
