"""Group commit: concurrent requests share commits, each gets its own committed record, the chain holds."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import AuditEntry, audit_record
from apps.audit.writer import GroupCommitWriter

pytestmark = pytest.mark.django_db(transaction=True)  # the writer commits on the callers' own connections


def _entry(n: int) -> AuditEntry:
    return AuditEntry(actor_type="client", actor_id=1, actor_name="ward-app", action="read",
                      resource_type="Patient", resource_id=str(n), patient_id=n)  # fmt: skip


def _record(n: int) -> AuditEvent:
    try:
        return audit_record(_entry(n))
    finally:
        connections.close_all()


def test_concurrent_records_are_each_committed_once_in_one_valid_chain():
    with ThreadPoolExecutor(max_workers=12) as pool:
        events = list(pool.map(_record, range(200)))
    assert sorted(int(e.resource_id) for e in events) == list(range(200))
    assert len({e.seq for e in events}) == 200
    assert AuditEvent.objects.count() == 200
    report = audit_chain_verify()
    assert report.ok and report.checked == 200


def test_a_failed_batch_fails_every_request_in_it_and_the_next_batch_still_works(monkeypatch):
    writer = GroupCommitWriter()
    calls = threading.Event()

    def failing_once(entries):
        if not calls.is_set():
            calls.set()
            raise RuntimeError("database went away")
        from apps.audit.services import audit_record_batch

        return audit_record_batch(entries)

    monkeypatch.setattr("apps.audit.services.audit_record_batch", failing_once)
    with pytest.raises(RuntimeError, match="database went away"):
        writer.submit(_entry(1))
    monkeypatch.undo()
    assert writer.submit(_entry(2)).resource_id == "2"
