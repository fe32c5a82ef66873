"""Records cut from a writer's chain with its head put back from a genuine earlier copy (seal and all): every seal
checks out, and the writer that wrote the cut records was the only witness. It recorded the cut in the primary
chain, but `audit verify` said the trail was intact. Verify now reports each break a writer recorded (BREAK) until
`audit acknowledge-break` records, sealed in primary, that someone looked into it."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.writer import GroupCommitWriter
from tests.audit.helpers import run_verify, ward_app_entry

pytestmark = pytest.mark.django_db(transaction=True)  # the writer commits on a connection of its own


def test_a_cut_the_writer_witnessed_is_reported_until_acknowledged():
    writer = GroupCommitWriter()
    try:
        first = writer.submit(ward_app_entry(resource_id="1", patient_id=1))
        earlier = AuditChainHead.objects.values("seq", "last_hash", "seal").get(pk=first.chain_id)
        for n in range(2, 5):
            writer.submit(ward_app_entry(resource_id=str(n), patient_id=n))
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
            cursor.execute("DELETE FROM audit_auditevent WHERE chain_id = %s AND seq > 1", [first.chain_id])
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
        AuditChainHead.objects.filter(pk=first.chain_id).update(**earlier)
        for n in range(10, 15):  # the next ordinary writes
            writer.submit(ward_app_entry(resource_id=str(n), patient_id=n))
    finally:
        writer.close()

    cut = AuditEvent.objects.get(resource_type="AuditChain", action="delete")
    report = audit_chain_verify()
    assert not report.ok and report.reported_breaks == [(cut.pk, str(first.chain_id), 3)]
    code, output = run_verify()
    assert code == 1 and f"BREAK    chain #{first.chain_id}: its writer saw 3 record(s) cut from its end" in output

    out = StringIO()
    call_command("audit", "acknowledge-break", str(cut.pk), "--by", "security-officer", stdout=out)
    assert f"Chain break of record {cut.pk} acknowledged" in out.getvalue()
    assert run_verify()[0] == 0
    acknowledgement = AuditEvent.objects.get(resource_type="AuditChainBreak")
    assert (acknowledgement.resource_id, acknowledgement.actor_name) == (str(cut.pk), "security-officer")
    with pytest.raises(CommandError, match="acknowledged already"):
        call_command("audit", "acknowledge-break", str(cut.pk), "--by", "security-officer")
    with pytest.raises(CommandError, match="no chain break"):
        call_command("audit", "acknowledge-break", str(acknowledgement.pk), "--by", "someone")
