"""The audit trail is append-only and tamper-evident: `audit verify` finds edited and deleted rows."""

import itertools
import json

import pytest
from django.db import connection, transaction

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import AuditEntry, audit_partitions_ensure, audit_record, audit_record_batch, chain_keys
from tests.audit.helpers import run_verify, ward_app_entry

pytestmark = pytest.mark.django_db


def _entry(**fields) -> AuditEntry:
    return ward_app_entry(**{"resource_id": "7", "patient_id": 7, **fields})


def _tamper(sql: str, params: list) -> None:
    """What an attacker with database access would do: switch the append-only trigger off first."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def test_records_chain_in_order_and_verify_clean():
    audit_record_batch([_entry(resource_id=str(i)) for i in range(5)])
    audit_record(_entry(action="search", resource_id="", query_digest="d" * 64))
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    assert AuditChainHead.objects.get(pk=1).last_hash == events[-1].hash
    assert run_verify() == (
        0,
        f"KEY      {chain_keys().current_id} (AUDIT_CHAIN_KEY) seals 6 record(s), 1 chain head(s)\n"
        "Audit trail intact: 6 record(s) in 1 chain(s) verified.\n",
    )


def test_the_orm_refuses_updates_and_deletes():
    event = audit_record(_entry())
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(outcome="denied")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    with pytest.raises(PermissionError):
        event.delete()
    event.outcome = "denied"
    with pytest.raises(PermissionError):
        event.save()


def test_the_database_refuses_updates_and_deletes():
    audit_record(_entry())
    for statement in ("UPDATE audit_auditevent SET outcome = 'denied'", "DELETE FROM audit_auditevent"):
        with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert AuditEvent.objects.count() == 1


def test_verify_reports_an_edited_row():
    audit_record_batch([_entry(resource_id=str(i)) for i in range(4)])
    _tamper("UPDATE audit_auditevent SET patient_id = 99 WHERE seq = 2", [])
    code, output = run_verify()
    assert code == 1
    assert "EDITED   record #2 of chain primary" in output


def test_verify_reports_a_deleted_row_and_a_cut_tail():
    audit_record_batch([_entry(resource_id=str(i)) for i in range(6)])
    _tamper("DELETE FROM audit_auditevent WHERE seq IN (3, 6)", [])
    code, output = run_verify()
    assert code == 1
    assert "DELETED  record(s) #3 of chain primary" in output
    assert "DELETED  record(s) #6 of chain primary" in output
    report = audit_chain_verify()
    assert report.missing == [("primary", 3, 3), ("primary", 6, 6)] and not report.edited


def test_verify_reports_a_forged_row_resealed_without_the_key():
    audit_record_batch([_entry(resource_id=str(i)) for i in range(3)])
    # A forger who recomputes a plain SHA-256 instead of the keyed HMAC is still caught.
    _tamper("UPDATE audit_auditevent SET hash = encode(sha256('forged'::bytea), 'hex') WHERE seq = 2", [])
    report = audit_chain_verify()
    assert report.edited == [("primary", 2)]
    assert report.relinked == [("primary", 3)]


def test_process_chains_are_registered_and_a_chain_deleted_whole_is_found():
    from apps.audit.services import audit_chain_open

    audit_chain_open(name="host:1:aaaa")
    other = audit_chain_open(name="host:2:bbbb")
    audit_record_batch([_entry(), _entry()], chain="host:1:aaaa")
    audit_record_batch([_entry()], chain="host:2:bbbb")
    report = audit_chain_verify()
    assert report.ok and report.chains == 3 and report.checked == 5
    _tamper("DELETE FROM audit_auditevent WHERE chain_id = %s", [other.chain_id])
    with connection.cursor() as cursor:  # the heads refuse DELETE too: the attacker switches that off as well
        cursor.execute("ALTER TABLE audit_auditchainhead DISABLE TRIGGER audit_chain_head_kept")
        cursor.execute("DELETE FROM audit_auditchainhead WHERE id = %s", [other.chain_id])
    code, output = run_verify()
    assert code == 1
    assert f"DELETED  chain #{other.chain_id}" in output


def test_a_chain_never_registered_is_reported_as_forged():
    audit_record_batch([_entry()], chain="forged:1")
    report = audit_chain_verify()
    assert report.unregistered_chains == ["forged:1"]


def test_monthly_partitions_are_created_ahead_idempotently():
    from datetime import date

    created = audit_partitions_ensure(months_ahead=2, today=date(2031, 11, 5))
    assert created == ["audit_auditevent_y2031m11", "audit_auditevent_y2031m12", "audit_auditevent_y2032m01"]
    assert audit_partitions_ensure(months_ahead=2, today=date(2031, 11, 5)) == []


def test_audit_api_needs_audit_read_and_filters(api, issue_token):
    audit_record_batch([_entry(patient_id=1), _entry(patient_id=2), _entry(patient_id=2, action="search")])
    reader = issue_token("patient:read")
    assert api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {reader}").status_code == 403
    auditor = issue_token("audit:read")
    body = api.get("/api/v1/audit/?patient_id=2", HTTP_AUTHORIZATION=f"Bearer {auditor}").json()
    assert [e["seq"] for e in body["results"]] == [3, 2]
    response = api.get("/api/v1/audit/?action=peek", HTTP_AUTHORIZATION=f"Bearer {auditor}")
    assert response.status_code == 400
    response = api.get("/api/v1/audit/?patient_id=99999999999999999999", HTTP_AUTHORIZATION=f"Bearer {auditor}")
    assert response.status_code == 400 and "patient_id" in response.json()["errors"]  # no patient has it
    backwards = {"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}
    response = api.get("/api/v1/audit/", backwards, HTTP_AUTHORIZATION=f"Bearer {auditor}")
    assert response.status_code == 400 and "since" in response.json()["errors"]


def test_ipv4_mapped_addresses_verify_clean():
    audit_record(_entry(source_ip="::ffff:1.2.3.4"))
    assert AuditEvent.objects.get().source_ip == "::ffff:1.2.3.4"
    assert audit_chain_verify().ok


def test_a_head_moved_back_over_deleted_records_is_found():
    audit_record_batch([_entry(resource_id=str(i)) for i in range(5)])
    _tamper("DELETE FROM audit_auditevent WHERE seq > 3", [])
    previous = AuditEvent.objects.get(seq=3).hash
    with connection.cursor() as cursor:  # rewind the head so the cut looks like the end of the chain
        cursor.execute("UPDATE audit_auditchainhead SET seq = 3, last_hash = %s WHERE name = 'primary'", [previous])
    report = audit_chain_verify()
    assert report.forged_heads == ["primary"] and not report.missing
    code, output = run_verify()
    assert code == 1 and "FORGED   head of chain primary" in output


@pytest.mark.parametrize("address", ["::1.2.3.4", "::a00:1", "::ffff:0:a00:1"])
def test_ipv6_addresses_postgresql_prints_another_way_verify_clean(address):
    # PostgreSQL prints an IPv4-compatible address (::/96) dotted, "::1.2.3.4", where Python writes "::102:304":
    # the record re-read from the table must hash as it was sealed, not be reported as edited.
    audit_record(_entry(source_ip=address))
    assert audit_chain_verify().ok


def test_a_link_local_client_with_a_zone_is_recorded_without_it():
    # A socket's peer on a link-local IPv6 address carries its zone ("%eth0"), which the inet type refuses: the
    # record would fail, and the client be refused every read, for an interface name the trail does not need.
    event = audit_record(_entry(source_ip="fe80::1%eth0"))
    assert AuditEvent.objects.get(pk=event.pk).source_ip == "fe80::1"
    assert audit_chain_verify().ok


def test_verify_reports_a_chain_registration_edited_to_a_non_number_instead_of_crashing():
    from apps.audit.services import audit_chain_open

    audit_chain_open(name="host:1:aaaa")
    _tamper("UPDATE audit_auditevent SET resource_id = 'gone' WHERE resource_type = 'AuditChain'", [])
    code, output = run_verify()
    assert code == 1
    assert "EDITED   record #1 of chain primary" in output
    assert "FORGED   chain host:1:aaaa: never registered" in output


def test_verify_reports_a_trail_emptied_whole():
    """The migration made the primary chain's head; a trail with no head and no record at all was wiped (by its
    owner, who may pass the TRUNCATE guard), not never written."""
    audit_record_batch([_entry(resource_id=str(i)) for i in range(3)])
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('audit.allow_truncate', 'on', true)")
        cursor.execute("TRUNCATE audit_auditevent, audit_auditchainhead")
    code, output = run_verify()
    assert code == 1
    assert "DELETED  chain primary" in output


def _verify_anchored(path) -> tuple[int, str]:
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    try:
        call_command("audit", "verify", "--anchor", str(path), stdout=out)
    except CommandError as error:
        return 1, out.getvalue() + str(error)
    return 0, out.getvalue()


def test_an_anchor_kept_off_the_database_finds_records_cut_under_a_head_restored_from_an_earlier_copy(tmp_path):
    anchors = tmp_path / "audit-anchors.json"
    audit_record_batch([_entry(resource_id=str(i)) for i in range(2)])
    earlier = AuditChainHead.objects.values("seq", "last_hash", "seal").get(name="primary")  # copied by the attacker
    audit_record_batch([_entry(resource_id=str(i)) for i in range(2, 5)])
    assert _verify_anchored(anchors)[0] == 0  # the first run only writes the anchors
    assert json.loads(anchors.read_text())["chains"]["primary"][0] == 5

    _tamper("DELETE FROM audit_auditevent WHERE seq > 2", [])
    AuditChainHead.objects.filter(name="primary").update(**earlier)
    assert audit_chain_verify().ok  # every seal is genuine: the seals alone cannot tell
    code, output = _verify_anchored(anchors)
    assert code == 1 and "CUT      chain primary below its anchor: record #5 is gone or changed" in output
    assert json.loads(anchors.read_text())["chains"]["primary"][0] == 5  # a failed verify keeps the old anchors


def test_an_anchor_file_that_is_not_one_is_refused_with_a_message(tmp_path):
    anchors = tmp_path / "audit-anchors.json"
    for junk in ("not json", '{"chains": [1, 2]}', '{"chains": {"primary": "x"}}'):
        anchors.write_text(junk)
        code, output = _verify_anchored(anchors)
        assert code == 1 and "is not an anchor file" in output


def test_anchors_that_cannot_be_saved_are_a_command_error(tmp_path):
    audit_record_batch([_entry()])
    code, output = _verify_anchored(tmp_path / "no-such-directory" / "audit-anchors.json")
    assert code == 1 and "the anchors could not be saved" in output
