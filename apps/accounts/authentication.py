"""Bearer-token authentication for machine clients."""

from __future__ import annotations

import hashlib

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from apps.accounts.failure_budget import (
    forget_valid_token,
    known_valid_tokens,
    record_failed_authentication,
    refuse_if_over_budget,
    remember_valid_token,
)
from apps.accounts.middleware import URL_CREDENTIAL_MESSAGE, token_in_query
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
    """Whether the query string carries one of our tokens (TokenInUrlMiddleware refuses it first on every path;
    checked here too for a stack built without it): refused with its own code rather than ignored, so the
    client learns to stop and to rotate it."""
    return token_in_query(request.META.get("QUERY_STRING", ""))


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
        except exceptions.AuthenticationFailed:
            if known or known_elsewhere:
                forget_valid_token(digest)
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
            raise exceptions.AuthenticationFailed(_("Token has been revoked."), code="token_revoked")
        if client.is_expired:
            raise exceptions.AuthenticationFailed(_("Token has expired."), code="token_expired")
        return client

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
