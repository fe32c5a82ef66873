"""How a restore epoch reaches what other modules keep of the database, and the draws those keep in step with it
(review d): the stack calls hooks they register (apps/core/local_cache.py imports the stack, never the other way
round), and a local cache's invalidation draws in the edit's transaction, as the stack's scope bumps do."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.db import connection, transaction

import apps.caching.stack as stack_module
from apps.caching.stack import RESTORE_SEQUENCE
from apps.core.local_cache import VersionedLocalCache
from apps.ratelimits.models import RateLimitPolicy
from tests.caching.support import make_stack


def test_the_stack_imports_nothing_of_the_local_caches():
    """apps.core.local_cache imports the stack at module level; the stack imported it back inside two functions,
    a cycle between the layers. It registers a hook (`on_restore`); the shared breaker is apps.core.breaker's."""
    tree = ast.parse(Path(stack_module.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "apps.core.local_cache" not in imported


@pytest.mark.django_db
def test_a_restore_epoch_drops_every_local_cache_of_the_process():
    local = VersionedLocalCache("f-restore-hook", ttl=3600, check_interval=3600)
    assert local.get("k", lambda: "before the restore") == "before the restore"
    make_stack()._forget_before_restore(why="test: another process started a restore epoch")
    assert local.get("k", lambda: "as restored") == "as restored"


def _last_drawn() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value FROM {RESTORE_SEQUENCE}")  # noqa: S608 - a constant
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_rate_limit_policy_edit_draws_in_its_own_transaction():
    """Its invalidation ran in on_commit, so its draw came after the commit, in a transaction of its own: a process
    ending between the two left an edit a restore could take back without a draw to show it."""
    before = _last_drawn()
    with transaction.atomic():
        RateLimitPolicy.objects.create(scope="f-restore-draw", requests=50)
        assert _last_drawn() > before, "no draw in the edit's transaction"
