"""Send reads to the `replica` alias when one is configured (DATABASE_REPLICA_URL); writes to default.

Reads inside a transaction that has written stay on the primary, so a request sees its own writes. Who is
signed in (users, their groups and permissions, sessions) is always read on the primary: a replica that had not
caught up showed a fresh login, a new user or a changed password or role as it was before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from django.db import connections

_primary_only: ContextVar[bool] = ContextVar("primary_only", default=False)
# Apps whose rows decide who the caller is and what they may do: read where they are written.
PRIMARY_READ_APPS = frozenset({"auth", "sessions"})


@contextlib.contextmanager
def reads_from_primary() -> Iterator[None]:
    """Route this context's reads to the primary: what a cache stores must not lag behind the
    generation it is stored under (a replica may still hold the data a write just replaced)."""
    token = _primary_only.set(True)
    try:
        yield
    finally:
        _primary_only.reset(token)


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints) -> str | None:
        if "replica" not in connections.settings:
            return None
        if _primary_only.get() or connections["default"].in_atomic_block:
            return "default"
        if model is not None and model._meta.app_label in PRIMARY_READ_APPS:
            return "default"
        return "replica"

    def db_for_write(self, model, **hints) -> str:
        return "default"

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # both aliases hold the same data

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints) -> bool:
        return db == "default"
