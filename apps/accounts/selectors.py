"""Reads of API clients."""

from __future__ import annotations

from apps.accounts.models import ApiClient
from apps.accounts.services import token_hash


def api_client_for_token(token: str) -> ApiClient | None:
    """The client a presented token belongs to, revoked or expired ones included (the caller says why)."""
    return ApiClient.objects.filter(token_hash=token_hash(token)).first()
