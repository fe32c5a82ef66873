"""The session store: Django's database one, read from the primary, with unknown keys remembered briefly.

A session is written to the primary at login; the replica router sent its next read to a replica that had
not caught up yet, so a fresh login looked logged out. And every request with a made-up session cookie cost
a query: a key found missing is remembered (by digest) for a few seconds.
"""

from __future__ import annotations

import hashlib
import logging

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from apps.core.local_cache import NegativeCache

PRIMARY = "default"

# Session keys are random and made only by the server (create, cycle_key): one found missing cannot appear.
unknown_sessions = NegativeCache(ttl=5.0, max_entries=10_000)


def _digest(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()


class SessionStore(DatabaseSessionStore):
    """Django's database session store, reading from the primary and remembering unknown keys."""

    def _known_missing(self) -> bool:
        key = self.session_key
        if key is not None and _digest(key) not in unknown_sessions:
            return False
        self._session_key = None
        return True

    def _missing(self, key: str | None, exc: Exception) -> None:
        if isinstance(exc, SuspiciousOperation):
            logging.getLogger(f"django.security.{exc.__class__.__name__}").warning(str(exc))
        if key is not None:
            unknown_sessions.add(_digest(key))
        self._session_key = None

    def _get_session_from_db(self):
        if self._known_missing():
            return None
        key = self.session_key
        try:
            return self.model.objects.using(PRIMARY).get(session_key=key, expire_date__gt=timezone.now())
        except (self.model.DoesNotExist, SuspiciousOperation) as exc:
            self._missing(key, exc)
            return None

    async def _aget_session_from_db(self):
        if self._known_missing():
            return None
        key = self.session_key
        try:
            return await self.model.objects.using(PRIMARY).aget(session_key=key, expire_date__gt=timezone.now())
        except (self.model.DoesNotExist, SuspiciousOperation) as exc:
            self._missing(key, exc)
            return None

    def exists(self, session_key: str) -> bool:
        return self.model.objects.using(PRIMARY).filter(session_key=session_key).exists()

    async def aexists(self, session_key: str) -> bool:
        return await self.model.objects.using(PRIMARY).filter(session_key=session_key).aexists()

    def save(self, must_create: bool = False) -> None:
        super().save(must_create=must_create)
        if self.session_key is not None:  # a key saved under a name chosen by the caller, found missing before
            unknown_sessions.discard(_digest(self.session_key))

    async def asave(self, must_create: bool = False) -> None:
        await super().asave(must_create=must_create)
        if self.session_key is not None:
            unknown_sessions.discard(_digest(self.session_key))

    def delete(self, session_key: str | None = None) -> None:
        # Django's reads the row first, through the router: a lagging replica made a logout delete nothing.
        session_key = session_key or self.session_key
        if session_key is not None:
            self.model.objects.using(PRIMARY).filter(session_key=session_key).delete()

    async def adelete(self, session_key: str | None = None) -> None:
        session_key = session_key or self.session_key
        if session_key is not None:
            await self.model.objects.using(PRIMARY).filter(session_key=session_key).adelete()
