"""Group commit: concurrent requests share commits, each gets its own committed record, the chain holds."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from apps.audit.models import AuditChainHead, AuditEvent
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
    assert len({(e.chain_id, e.seq) for e in events}) == 200
    assert AuditEvent.objects.exclude(resource_type="AuditChain").count() == 200
    report = audit_chain_verify()
    # The process's own chain, registered by one record in the primary chain.
    assert report.ok and report.chains == 2 and report.checked == 201


def test_the_writer_recovers_when_its_chain_head_moves():
    writer = GroupCommitWriter()
    first = writer.submit(_entry(1))
    AuditChainHead.objects.filter(pk=first.chain_id).update(seq=first.seq + 5)  # someone else moved it
    second = writer.submit(_entry(2))
    assert second.chain_id == first.chain_id and second.seq == first.seq + 6


def test_a_failed_batch_fails_its_requests_and_the_next_batch_still_works(monkeypatch):
    from apps.audit import services

    writer = GroupCommitWriter()
    writer.submit(_entry(0))  # opens this writer's chain
    original = services.audit_append_owned

    def database_went_away(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "audit_append_owned", database_went_away)
    with pytest.raises(RuntimeError, match="database went away"):
        writer.submit(_entry(1))
    monkeypatch.setattr(services, "audit_append_owned", original)
    assert writer.submit(_entry(2)).resource_id == "2"
    assert audit_chain_verify().ok
