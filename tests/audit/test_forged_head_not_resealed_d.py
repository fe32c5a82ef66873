"""A chain head moved without the key (records cut from its end, the head put back by hand, its seal left stale) is
never sealed again by the next append: `audit verify` called it FORGED, and after the next ordinary writes it said
nothing (the writer resumed from the head as it was, and its next append sealed it, the new records taking the cut
ones' places)."""

import pytest

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_record_batch
from apps.audit.writer import GroupCommitWriter
from tests.audit.helpers import cut_tail, run_verify, ward_app_entry

pytestmark = pytest.mark.django_db(transaction=True)  # the writer commits on a connection of its own


def test_a_cut_writer_chain_stays_reported_after_the_next_writes(caplog):
    writer = GroupCommitWriter()
    try:
        first = writer.submit(ward_app_entry(resource_id="1", patient_id=1))
        for n in range(2, 8):
            writer.submit(ward_app_entry(resource_id=str(n), patient_id=n))
        cut_tail(first.chain_id, keep=first.seq)
        assert audit_chain_verify().forged_heads  # as before: the cut head is reported

        with caplog.at_level("ERROR", logger="apps.audit.services"):
            later = [writer.submit(ward_app_entry(resource_id=str(n), patient_id=n)) for n in range(10, 20)]

        report = audit_chain_verify()
        assert not report.ok
        cut = AuditChainHead.objects.get(pk=first.chain_id)
        assert report.forged_heads == [cut.name] and cut.seq == first.seq  # left as found
        assert all(event.chain_id != first.chain_id for event in later)  # the writer went on in a new chain
        assert len({event.chain_id for event in later}) == 1
        broken = AuditEvent.objects.get(resource_type="AuditChain", action="delete")
        assert (broken.resource_id, broken.outcome, broken.result_count) == (str(first.chain_id), "error", 6)
        assert "does not match its seal" in caplog.text
        code, output = run_verify()
        assert code == 1 and f"FORGED   head of chain {cut.name}" in output
    finally:
        writer.close()


def test_a_cut_primary_chain_stays_reported_after_the_next_writes(caplog):
    audit_record_batch([ward_app_entry(resource_id=str(n), patient_id=n) for n in range(5)])
    primary = AuditChainHead.objects.get(name="primary")
    cut_tail(primary.pk, keep=3)
    with caplog.at_level("ERROR", logger="apps.audit.services"):
        for n in range(5, 9):  # records written inside transactions (clinical writes, commands) go to primary
            audit_record_batch([ward_app_entry(resource_id=str(n), patient_id=n)])
    # Said once by this process, not an ERROR per clinical write for ever (acknowledging leaves the seal as found).
    assert caplog.text.count("does not match its seal") == 1
    report = audit_chain_verify()
    assert report.forged_heads == ["primary"] and not report.ok
    assert AuditChainHead.objects.get(name="primary").seq == 7  # appended to all the same: nothing is refused
