"""How the API-client commands find the client an operator named."""

from __future__ import annotations

from django.core.management.base import CommandError

from apps.accounts.models import ApiClient
from apps.accounts.services import normalize_client_name


def client_named(name: str) -> ApiClient:
    """The client of that name, as typed or as it is stored (surrounding whitespace dropped, NFKC). A name
    differing in case only is suggested, never acted on: a revoke must not guess which client was meant."""
    normalized = normalize_client_name(name)
    client = ApiClient.objects.filter(name=name).first() or ApiClient.objects.filter(name=normalized).first()
    if client is not None:
        return client
    alike = list(ApiClient.objects.filter(name__iexact=normalized).values_list("name", flat=True)[:5])
    suggestion = f" Did you mean {', '.join(repr(a) for a in alike)}?" if alike else ""
    raise CommandError(f"No API client named {name!r}.{suggestion}")
