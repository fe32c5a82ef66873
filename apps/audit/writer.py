"""Group commit for the audit trail.

Each process runs one writer thread. Request threads hand it their entries and wait; the writer takes
everything that queued up while it was busy and appends it to the chain in one transaction (one lock
on the chain head, one multi-row INSERT, one commit). Every record is durable before the request that
caused it answers, yet concurrent requests share the cost of the commit instead of queueing on the
chain head one by one.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future

from django.db import close_old_connections, connection

from apps.audit.models import AuditEvent


class AuditWriter:
    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[object, Future]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def submit(self, entry, timeout: float = 10.0) -> AuditEvent:
        """Queue one entry and wait until its batch is committed (raises if the batch failed)."""
        self._ensure_thread()
        future: Future = Future()
        self._queue.put((entry, future))
        return future.result(timeout=timeout)

    def _ensure_thread(self) -> None:
        # A forked child (gunicorn, Celery prefork) inherits no running thread: start its own.
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._pid = os.getpid()
                self._thread.start()

    def _run(self) -> None:
        from apps.audit.services import audit_record_batch

        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                events = audit_record_batch([entry for entry, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiter learns that its record was not written
                for _, future in batch:
                    future.set_exception(exc)
                connection.close()  # start the next batch on a fresh connection
                continue
            finally:
                close_old_connections()
            for (_, future), event in zip(batch, events, strict=True):
                future.set_result(event)


writer = AuditWriter()
