"""Group commit for the audit trail, leader/follower style.

Request threads that need an audit record at the same time share one transaction: the first to
arrive becomes the leader and writes everything queued so far (one lock on the chain head, one
multi-row INSERT, one commit); the others wait for that commit. When the leader's batch is done and
more entries have queued meanwhile, the first of their threads is promoted to lead the next batch.
No extra thread and no hand-off to one: the thread that writes is one that was already running.
Every record is committed before the response that caused it leaves.
"""

from __future__ import annotations

import threading

from apps.audit.models import AuditEvent


class _Pending:
    __slots__ = ("done", "entry", "error", "event", "leads")

    def __init__(self, entry) -> None:
        self.entry = entry
        self.event: AuditEvent | None = None
        self.error: BaseException | None = None
        self.leads = False
        self.done = threading.Event()


class GroupCommitWriter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leader_active = False

    def submit(self, entry, timeout: float = 10.0) -> AuditEvent:
        """Write one entry, sharing the commit with whatever else is queued; raises if it failed."""
        item = _Pending(entry)
        with self._lock:
            self._queue.append(item)
            if not self._leader_active:
                self._leader_active = item.leads = True
        if not item.leads:
            if not item.done.wait(timeout):
                raise TimeoutError("the audit record was not committed in time")
            item.done.clear()
        if item.leads:
            self._lead()
        if item.error is not None:
            raise item.error
        return item.event

    def _lead(self) -> None:
        from apps.audit.services import audit_record_batch

        with self._lock:
            batch, self._queue = self._queue, []
        try:
            events = audit_record_batch([pending.entry for pending in batch])
            for pending, event in zip(batch, events, strict=True):
                pending.event = event
        except Exception as exc:  # noqa: BLE001 - each waiter learns that its record was not written
            for pending in batch:
                pending.error = exc
        with self._lock:
            successor = self._queue[0] if self._queue else None
            if successor is not None:
                successor.leads = True
            else:
                self._leader_active = False
        for pending in batch:
            pending.done.set()
        if successor is not None:
            successor.done.set()


writer = GroupCommitWriter()
