"""Bearer-token authentication for machine clients."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils.http import is_same_domain
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication, get_authorization_header
from rest_framework.request import Request

from apps.accounts.failure_budget import (
    forget_valid_token,
    known_valid_tokens,
    record_failed_authentication,
    refuse_if_over_budget,
    remember_valid_token,
)
from apps.accounts.middleware import URL_CREDENTIAL_MESSAGE, token_in_path, token_in_query
from apps.accounts.models import ApiClient
from apps.accounts.selectors import api_client_for_token, in_open_transaction


class ClientPrincipal:
    """What `request.user` is for a machine client: authenticated, never staff."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.pk = client.pk

    def get_username(self) -> str:
        return f"client:{self.client.name}"

    def __str__(self) -> str:
        return self.get_username()

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False


def _token_in_url(request: Request) -> bool:
    """Whether the query string or the path carries one of our tokens (TokenInUrlMiddleware refuses it first on
    every path; checked here too for a stack built without it): refused with its own code rather than ignored,
    so the client learns to stop and to rotate it."""
    return token_in_query(request.META.get("QUERY_STRING", "")) or token_in_path(request.path_info)


# A token of ours presented whole that has ended (revoked, expired) is no guess: its client's row matched its
# secret. Counted against the address's failure budget, one clinician's stale token behind a hospital's NAT spent
# it for everyone there, and every token not yet known valid to this process was refused (429) with it. Wrong,
# unknown, rotated-away and malformed tokens still count.
STALE_TOKEN_CODES = frozenset({"token_revoked", "token_expired"})


def _remember_valid(digest: str) -> None:
    # A client read inside a transaction may be one it created or rotated in: valid once that commits, never if
    # it rolls back (as `_remember_unknown` remembers a miss).
    if in_open_transaction():
        transaction.on_commit(lambda: remember_valid_token(digest), using="default")
    else:
        remember_valid_token(digest)


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>`; absent header falls through to the next authenticator."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ClientPrincipal, ApiClient] | None:
        header = get_authorization_header(request).split()
        # Whatever the header says: beside a valid one the token in the URL was ignored, and never rotated.
        if _token_in_url(request):
            raise exceptions.AuthenticationFailed(URL_CREDENTIAL_MESSAGE, code="token_in_url")
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        # The digest api_client_for_token looks the token up by (an ASCII token's bytes are its UTF-8).
        digest = hashlib.sha256(header[1]).hexdigest() if len(header) == 2 else ""
        known = bool(digest) and digest in known_valid_tokens
        known_elsewhere = False
        if not known:
            # Before any lookup: past its budget of failures an address costs nothing more than this, unless
            # another process knows the token valid (then it is looked up and checked as any token is).
            known_elsewhere = refuse_if_over_budget(request.META.get("REMOTE_ADDR", ""), digest)
        try:
            client = self._client_for(header)
        except exceptions.AuthenticationFailed as failed:
            # A revoked or expired token is its client's, found by the token's hash: the refusal's audit record
            # names it, so a revoked client still trying is traceable (audit/http.py, audit/views.py).
            request.ended_token_client = getattr(failed, "ended_client", None)
            if known or known_elsewhere:
                forget_valid_token(digest)
            if failed.get_codes() not in STALE_TOKEN_CODES:
                record_failed_authentication(request.META.get("REMOTE_ADDR", ""))
            raise
        if not known:  # remembered for its hour from the first success, not renewed on each (a lock a request)
            _remember_valid(digest)
        return ClientPrincipal(client), client

    def _client_for(self, header: list[bytes]) -> ApiClient:
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                _("Malformed Authorization header: expected 'Bearer <token>'."), code="malformed_token"
            )
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(_("Token is not valid."), code="invalid_token") from exc

        client = api_client_for_token(token)
        if client is None:
            raise exceptions.AuthenticationFailed(_("Token is not valid."), code="invalid_token")
        if client.is_revoked:
            ended = exceptions.AuthenticationFailed(_("Token has been revoked."), code="token_revoked")
        elif client.is_expired:
            ended = exceptions.AuthenticationFailed(_("Token has expired."), code="token_expired")
        else:
            return client
        ended.ended_client = client
        raise ended

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


def _trusted_origin(request: Request, origin: str) -> bool:
    """Django's CSRF rule for an Origin: this site's own (scheme and host), or one of CSRF_TRUSTED_ORIGINS,
    exactly or through a wildcard subdomain entry (`https://*.example.org`)."""
    if origin == f"{request.scheme}://{request.get_host()}":
        return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted:
        return True
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return False
    return any(
        entry.startswith(f"{parts.scheme}://*") and is_same_domain(parts.netloc, entry[len(parts.scheme) + 3 :][1:])
        for entry in trusted
    )


def _same_site_referer(request: Request) -> bool:
    # Over HTTPS only, as Django: a plain-HTTP Referer may be rewritten by anyone on the path.
    referer = request.headers.get("Referer", "")
    if not request.is_secure() or not referer:
        return False
    parts = urlsplit(referer)
    return parts.scheme == "https" and parts.netloc == request.get_host()


# What a browser's Sec-Fetch-Site says of a request another site's page (or a sibling subdomain's) sent.
_FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})


def _configured_origin(request: Request, origin: str | None) -> bool:
    """Whether `origin` is another host's that CSRF_TRUSTED_ORIGINS trusts (a dashboard served from a sibling
    subdomain, say), whose posts a browser rightly marks same-site or cross-site. This site's own Origin beside
    such a mark is a contradiction, not evidence."""
    own = f"{request.scheme}://{request.get_host()}"
    return origin is not None and origin != own and _trusted_origin(request, origin)


class SameOriginJSONSessionAuthentication(SessionAuthentication):
    """A staff session's POST to a patient endpoint (the dashboard's posted patient search), accepted only with
    evidence that a page of this site sent it: `Sec-Fetch-Site: same-origin`, an Origin of this site or of
    CSRF_TRUSTED_ORIGINS, an HTTPS Referer of this site, or else a valid CSRF token (X-CSRFToken, which whoami
    gives the dashboard).

    Why: the search took a session POST with none of that (no Origin, no Sec-Fetch-Site read as same-origin),
    so a page of another site, or a browser or plugin that sends no fetch metadata, could make a signed-in
    clinician's browser run an audited PHI search in the clinician's name. An Origin naming another site, or a
    Sec-Fetch-Site of cross-site or same-site (unless the Origin is one CSRF_TRUSTED_ORIGINS names), is refused
    first, whatever else comes with it."""

    def enforce_csrf(self, request: Request) -> None:
        # Refusals first, whatever else comes with them: `Sec-Fetch-Site: same-origin` beside an Origin of
        # another site was taken as evidence, and so was this site's Origin beside `Sec-Fetch-Site: cross-site`.
        origin = request.headers.get("Origin")
        if origin is not None and not _trusted_origin(request, origin):
            raise exceptions.PermissionDenied(
                f"CSRF Failed: Origin checking failed - {origin} does not match any trusted origins."
            )
        fetch_site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
        if fetch_site in _FOREIGN_FETCH_SITES and not _configured_origin(request, origin):
            raise exceptions.PermissionDenied(f"CSRF Failed: the browser says this request is {fetch_site}.")
        if fetch_site == "same-origin" or origin is not None or _same_site_referer(request):
            return
        super().enforce_csrf(request)  # the CSRF token, as for any session write
