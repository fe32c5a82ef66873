"""Group commit for the audit trail, leader/follower style, on a chain each process owns.

Request threads that need an audit record at the same time share one commit: the first to arrive
becomes the leader and writes everything queued so far; the others wait for that commit. When the
leader's batch is done and more entries have queued meanwhile, the first of their threads is
promoted to lead the next batch. No extra thread and no hand-off to one.

Each process appends to a chain of its own, whose end it keeps in memory, so a batch is one
statement and one commit on PostgreSQL and processes never queue on a shared lock. Every record is
committed before the response that caused it leaves.

On PostgreSQL the writer appends through a connection of its own (autocommit, one leader at a time
uses it), not the leader's request connection: a cached read then needs no pooled connection at
all, and its audit record skips Django's connect and cursor layers (about 15% of a cached read's
CPU on this machine).

Under load a batch rarely forms by chance: a record takes a few hundred microseconds, and the next
request of the same process is usually still in its view. A batch's round trip and commit are most
of a record's cost (client and PostgreSQL CPU per record fall about 4x from a batch of one to a
batch of eight), so reads announce themselves (`expecting`) and a leader waits, at most
AUDIT_GROUP_COMMIT_GATHER_MS, for the records of the reads still running in its process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import psycopg.sql
from django.conf import settings
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
)

from apps.audit.models import AuditEvent
from apps.audit.services import UnsealableEntry
from apps.core.postgresql.idle import IdleWatch

# libpq's limits on the writer's own connection, unless the settings' OPTIONS name them. Without them a database
# that vanishes without a reset (a failover moving its address, a dropped route) leaves the leader waiting on a
# dead socket for the kernel's two hours, and every PHI read of the process times out behind it; with them the
# batch fails (a 503) within about half a minute and the next one reconnects.
WRITER_SOCKET_LIMITS = {
    "connect_timeout": 5,  # seconds
    "keepalives": 1,
    "keepalives_idle": 10,  # seconds: a dead peer is found ~25 s into a wait for its answer
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # milliseconds a sent batch may stay unacknowledged
}


class _Pending:
    __slots__ = ("done", "entry", "error", "event", "leads")

    def __init__(self, entry) -> None:
        self.entry = entry
        self.event: AuditEvent | None = None
        self.error: BaseException | None = None
        self.leads = False
        self.done = threading.Event()


class LeaderInterrupted(RuntimeError):
    """The thread leading a batch was interrupted before it could say whether the batch committed."""


class GroupCommitWriter:
    def __init__(self, gather_seconds: float | None = None) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: list[_Pending] = []
        self._leader_active = False
        self._leader_gathering = False
        self._expected = 0
        self._thread = threading.local()
        self._gather_seconds = gather_seconds
        self._chain = None
        self._chain_pid: int | None = None
        self._database: psycopg.Connection | None = None
        self._database_pid: int | None = None
        self._database_watch: IdleWatch | None = None

    @property
    def gather_seconds(self) -> float:
        if self._gather_seconds is not None:
            return self._gather_seconds
        return settings.AUDIT_GROUP_COMMIT_GATHER_MS / 1000 if settings.AUDIT_GROUP_COMMIT else 0.0

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """Around work that will submit a record: a leader waits (briefly) for it to join its batch."""
        if not self.gather_seconds:
            yield
            return
        with self._lock:
            self._expected += 1
        self._thread.expected = True
        try:
            yield
        finally:
            if self._thread.expected:  # left without a record (an error before the audit)
                with self._lock:
                    self._arrive()

    def _arrive(self) -> None:
        # With the lock held: one expected record is in (or will never come).
        self._thread.expected = False
        self._expected -= 1
        if self._expected <= 0 and self._leader_gathering:
            self._arrived.notify()

    def submit(self, entry, timeout: float = 30.0) -> AuditEvent:
        """Write one entry, sharing the commit with whatever else is queued; raises if it failed."""
        item = _Pending(entry)
        with self._lock:
            self._queue.append(item)
            if getattr(self._thread, "expected", False):
                self._arrive()
            if not self._leader_active:
                self._leader_active = item.leads = True
        if not item.leads:
            try:
                self._follow(item, timeout)
            except BaseException:
                # Interrupted while waiting (KeyboardInterrupt, a signal handler's exception): a queued
                # request leaves, and one promoted meanwhile passes the lead on, or nobody would lead again.
                self._withdraw(item)
                raise
        if item.leads:
            self._lead(item)
        if item.error is not None:
            raise item.error
        return item.event

    def _follow(self, item: _Pending, timeout: float) -> None:
        if not item.done.wait(timeout):
            with self._lock:
                # Still queued and not promoted: withdraw, so no leader can hand the lead to a
                # thread that has given up. Promoted or already in a batch: see it through.
                if item in self._queue and not item.leads:
                    self._queue.remove(item)
                    raise TimeoutError("the audit record was not committed in time")
            item.done.wait()
        item.done.clear()

    def _withdraw(self, item: _Pending) -> None:
        successor = None
        with self._lock:
            if item in self._queue:  # queued, or promoted and not yet leading: its batch has not started
                self._queue.remove(item)
                if item.leads:
                    successor = self._hand_off()
        if successor is not None:
            successor.done.set()

    def _hand_off(self) -> _Pending | None:
        # With the lock held: the first queued request leads the next batch, or nobody leads.
        successor = self._queue[0] if self._queue else None
        if successor is not None:
            successor.leads = True
        else:
            self._leader_active = False
        return successor

    def _lead(self, own: _Pending) -> None:
        """Gather, commit one batch, and pass the lead on. Whatever ends the leader (a KeyboardInterrupt or
        any other BaseException raised in its thread) the lead is passed on and every follower of its batch
        is answered: before, they waited forever and so did every later record of the process."""
        batch: list[_Pending] = []
        try:
            with self._lock:
                if self._expected > 0:
                    # Requests of this process that are still running will each submit a record soon:
                    # one batch shares one round trip and one commit (most of a record's cost), so the
                    # leader waits for them, a bounded moment, instead of committing alone.
                    deadline = time.monotonic() + self.gather_seconds
                    self._leader_gathering = True
                    try:
                        while self._expected > 0 and (remaining := deadline - time.monotonic()) > 0:
                            self._arrived.wait(remaining)
                    finally:
                        self._leader_gathering = False
                batch, self._queue = self._queue, []
            self._commit(batch)
        except BaseException as exc:
            for pending in batch:
                if pending is not own and pending.event is None and pending.error is None:
                    pending.error = LeaderInterrupted(
                        f"the leader of this record's batch was interrupted ({type(exc).__name__}): it may not "
                        "have been committed"
                    )
            raise
        finally:
            with self._lock:
                if own in self._queue:  # ended while gathering: its record never joined a batch
                    self._queue.remove(own)
                successor = self._hand_off()
            for pending in batch:
                pending.done.set()
            if successor is not None:
                successor.done.set()

    def _commit(self, batch: list[_Pending]) -> None:
        """Write a batch; each waiter gets its record or the error that kept it out.

        A record the database refuses (a value out of range, a constraint) or that cannot be sealed (a field
        its HMAC or the JSON batch cannot take) fails its one statement and writes nothing, so the batch is
        written again one record at a time: one malformed record costs its own request a 503, never those of
        the requests that happened to share its commit.
        """
        try:
            events = self._write([pending.entry for pending in batch])
        except (DataError, IntegrityError, OverflowError, UnsealableEntry) as exc:  # OverflowError: SQLite's
            if len(batch) == 1:
                batch[0].error = exc
                return
            for pending in batch:
                self._commit([pending])
            return
        except Exception as exc:  # noqa: BLE001 - each waiter learns that its record was not written
            for pending in batch:
                pending.error = exc
            return
        for pending, event in zip(batch, events, strict=True):
            pending.event = event

    def _write(self, entries: list) -> list[AuditEvent]:
        from apps.audit.services import (
            ChainMoved,
            audit_append_owned,
            audit_chain_open,
            audit_chain_resume,
            audit_record_batch,
        )

        if self._chain is None or self._chain_pid != os.getpid():
            # A forked child (gunicorn, Celery prefork) must not share its parent's chain.
            name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            self._chain, self._chain_pid = audit_chain_open(name=name), os.getpid()
        if connection.vendor != "postgresql":
            return audit_record_batch(entries, chain=self._chain.name)
        try:
            database = self._own_database()
            try:
                return audit_append_owned(state=self._chain, entries=entries, database=database)
            except ChainMoved:
                self._chain = audit_chain_resume(self._chain)  # where the chain really ends, and how it got there
                return audit_append_owned(state=self._chain, entries=entries, database=database)
        except psycopg.Error as exc:
            # Not retried: the batch may have committed before the connection broke. The next batch
            # reconnects; the callers get Django's error, which the API answers with a 503.
            if not isinstance(exc, psycopg.DataError | psycopg.IntegrityError):  # the connection is fine then
                self.close()
            raise _as_django_error(exc) from exc

    def _own_database(self) -> psycopg.Connection:
        """The writer's autocommit connection, opened with Django's own parameters for `default`.

        A session the server ended while it sat idle (a restart, idle_session_timeout, pg_terminate_backend, a
        pooler dropping idle sessions) is replaced here, before the batch is sent: sent on it, the batch failed
        and every read in it was answered 503."""
        database = self._database
        if database is not None and self._database_pid == os.getpid():
            if not self._database_watch.ended_by_server():
                return database
            with contextlib.suppress(psycopg.Error):
                database.close()
        # A forked child drops its parent's connection without closing it (that would end the
        # parent's session on the shared socket).
        default = connections["default"]
        database = psycopg.connect(**{**WRITER_SOCKET_LIMITS, **default.get_connection_params()}, autocommit=True)
        role = default.settings_dict["OPTIONS"].get("assume_role")
        if role:  # as Django's own connections do
            database.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(role)))
        self._database_watch = IdleWatch(database)
        self._database, self._database_pid = database, os.getpid()
        return database

    def close(self) -> None:
        """Close the writer's own connection (tests close it before their database is dropped)."""
        database, self._database = self._database, None
        if database is not None and self._database_pid == os.getpid():
            database.close()


def _as_django_error(exc: psycopg.Error) -> DatabaseError:
    for theirs, ours in (
        (psycopg.OperationalError, OperationalError),
        (psycopg.InterfaceError, InterfaceError),
        (psycopg.DataError, DataError),
        (psycopg.IntegrityError, IntegrityError),
    ):
        if isinstance(exc, theirs):
            return ours(str(exc))
    return DatabaseError(str(exc))


writer = GroupCommitWriter()
