"""Reads of API clients."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from apps.accounts.models import ApiClient, scope_permission_codename
from apps.accounts.scopes import SCOPES
from apps.accounts.services import api_clients_cache, normalize_client_name, token_hash, unknown_tokens
from apps.core.selectors import one_or_none


def api_client_for_token(token: str) -> ApiClient | None:
    """The client a presented token belongs to, revoked or expired ones included (the caller says why).

    Served from the per-process client cache: one indexed query per token per process, then none
    until a client changes anywhere (revoke, rotate, edit) or a minute passes. Always read from the
    primary: a lagging replica must not hand a just-revoked client back into every process's cache.
    A token that matched no client is answered from `unknown_tokens` for a few seconds, once that is
    committed truth (`_remember_unknown`). Inside a transaction the cache is neither read nor filled: the
    row seen there may be one the transaction created or rotated in and will roll back, and the token must
    not stay valid for the cache's seconds after it never existed.
    """
    digest = token_hash(token)
    if digest in unknown_tokens:
        return None

    def load() -> ApiClient | None:
        # The database's clock read in the same query: the client keeps its offset from this host's (cached with
        # it, measured again at each load), and its expiry is judged by the database's time (ApiClient.is_expired).
        client = one_or_none(ApiClient.objects.using("default").annotate(database_now=Now()).filter(token_hash=digest))
        if client is not None:
            client.clock_offset = client.database_now - timezone.now()
        return client

    client = load() if in_open_transaction() else api_clients_cache.get(digest, load)
    if client is None:
        _remember_unknown(digest)
    return client


def in_open_transaction() -> bool:
    """Whether the default connection is inside a caller's transaction, whose changes may yet roll back. The test
    case's own atomic blocks are not the caller's transaction: Django's durable check skips them the same way."""
    return any(not block._from_testcase for block in connections["default"].atomic_blocks)


def _remember_unknown(digest: str) -> None:
    """Inside a transaction the lookup saw its uncommitted changes: a rotation or delete of the token's client
    that may yet roll back, and the token would be refused for seconds though it is still its client's. There
    the digest is remembered when the transaction commits (never, if it rolls back)."""
    if in_open_transaction():
        transaction.on_commit(lambda: unknown_tokens.add(digest), using="default")
    else:
        unknown_tokens.add(digest)


def api_client_named_alike(name: str) -> ApiClient | None:
    """The client whose name is `name` as names are compared when a client is created: after
    `normalize_client_name`, in any case (iexact, the fold of the database's constraint). At most one."""
    return ApiClient.objects.filter(name__iexact=normalize_client_name(name)).first()


def scopes_held_by(user) -> list[str]:
    """The scopes a staff user holds, through the Django permissions of the same names (superusers: all)."""
    return [scope for scope in SCOPES if user.has_perm(f"accounts.{scope_permission_codename(scope)}")]


def permissions_grantable_by(editor) -> QuerySet[Permission]:
    """The permissions a staff user may hand out: those they hold (directly or through a group); all, for a
    superuser."""
    if editor.is_superuser:
        return Permission.objects.all()
    return Permission.objects.filter(Q(user=editor) | Q(group__user=editor)).distinct()


def groups_grantable_by(editor) -> QuerySet[Group]:
    """The groups a staff user may put someone in: those granting nothing they do not hold themselves."""
    if editor.is_superuser:
        return Group.objects.all()
    beyond = Permission.objects.exclude(pk__in=permissions_grantable_by(editor).values("pk"))
    return Group.objects.exclude(permissions__in=beyond)


def holds_beyond(user, editor) -> bool:
    """Whether `user` holds anything `editor` does not (a permission, directly or through a group; superuser
    status): who may set a user's password may act as them."""
    if editor.is_superuser:
        return False
    if user.is_superuser:
        return True
    held = Permission.objects.filter(Q(user=user) | Q(group__user=user))
    return held.exclude(pk__in=permissions_grantable_by(editor).values("pk")).exists()
