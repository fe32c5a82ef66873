from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone

from apps.accounts.scopes import SCOPES


def scope_permission_codename(scope: str) -> str:
    """Staff users reach a scoped endpoint through the Django permission of the same scope."""
    return "scope_" + scope.replace(":", "_")


class ApiClient(models.Model):
    """A machine client with a bearer token. Only the token's SHA-256 is stored, never the token."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # The token's first characters, kept in clear so an operator can tell tokens apart in admin.
    token_prefix = models.CharField(max_length=16, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list, help_text="API scopes this client holds.")
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API client"
        permissions = [(scope_permission_codename(scope), f"Scope {scope}: {text}") for scope, text in SCOPES.items()]
        constraints = [
            # Two names differing only in case read as one client in admin and as the actor of audit records; the
            # services' check (name__iexact) is a read, so two creates at once both passed it. UPPER, as iexact
            # compares on PostgreSQL: the check and the constraint fold alike. Only case: NFKC and runs of spaces
            # are folded by the services before a name is stored, not here.
            models.UniqueConstraint(
                Upper("name"),
                name="accounts_apiclient_name_folded_unique",
                violation_error_message="An API client of this name (in some case) already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None or not self.is_active

    @property
    def is_expired(self) -> bool:
        """On the database's clock where the token lookup read it (`clock_offset`, set by api_client_for_token),
        as the expiry was set on: a host whose clock ran two hours behind let a token expired 30 minutes ago in."""
        if self.expires_at is None:
            return False
        return self.expires_at <= timezone.now() + getattr(self, "clock_offset", timedelta(0))

    def has_scope(self, scope: str) -> bool:
        # A list's membership, never a string's: scopes written as "audit:read,patient:read" by a script would
        # otherwise match any substring ("read", "audit").
        return isinstance(self.scopes, list) and scope in self.scopes
