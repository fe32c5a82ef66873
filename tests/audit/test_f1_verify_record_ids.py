"""`audit verify` checked every seal and link but not the records' ids, while the trail is listed (-id) and paged
(the API's cursor) by id: two records' ids swapped, or one set to 9000000000, reordered the trail and still verified
intact. A chain's ids must rise with its seq, and no id may be above what the id sequence issued."""

import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import AuditEntry, audit_chain_open, audit_record_batch
from tests.audit.helpers import run_verify, ward_app_entry

pytestmark = pytest.mark.django_db

FAR = datetime(2200, 1, 1, tzinfo=UTC)  # past every monthly partition: the default partition


def _entry(**fields) -> AuditEntry:
    return ward_app_entry(**{"resource_id": "7", "patient_id": 7, **fields})


def _tamper(sql: str, params: list) -> None:
    """What an attacker with database access would do: switch the append-only trigger off first."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(sql, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def _ids(chain_id: int = 1) -> dict[int, int]:
    """seq -> id of a chain's records."""
    return dict(AuditEvent.objects.filter(chain_id=chain_id).values_list("seq", "id"))


def _swap(first: int, second: int) -> None:
    _tamper("UPDATE audit_auditevent SET id = CASE id WHEN %s THEN %s ELSE %s END WHERE id IN (%s, %s)",
            [first, second, first, first, second])  # fmt: skip


def _verify_anchored(path) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("audit", "verify", "--anchor", str(path), stdout=out)
    except CommandError as error:
        return 1, out.getvalue() + str(error)
    return 0, out.getvalue()


def test_two_records_with_their_ids_swapped_are_reported():
    audit_record_batch([_entry(resource_id=str(i)) for i in range(5)])
    ids = _ids()
    _swap(ids[2], ids[4])
    report = audit_chain_verify()
    assert not report.ok and not report.edited and not report.relinked
    assert report.misordered_ids == [("primary", 3, ids[3], 2, ids[4]), ("primary", 4, ids[2], 3, ids[3])]
    code, output = run_verify()
    assert code == 1
    assert f"REORDERED record #3 of chain primary (id {ids[3]}) is not after record #2 (id {ids[4]})" in output
    assert f"REORDERED record #4 of chain primary (id {ids[2]}) is not after record #3 (id {ids[3]})" in output


def test_ids_swapped_between_records_in_two_partitions_are_reported():
    audit_record_batch([_entry(), _entry(recorded_at=FAR), _entry(), _entry(recorded_at=FAR)])
    ids = _ids()
    _swap(ids[1], ids[2])
    assert audit_chain_verify().misordered_ids == [("primary", 2, ids[1], 1, ids[2])]
    assert run_verify()[0] == 1


@pytest.mark.parametrize("seq", [2, 4])
def test_a_record_moved_to_the_top_of_the_trail_is_reported_with_an_anchor_too(tmp_path, seq):
    anchors = tmp_path / "audit-anchors.json"
    audit_record_batch([_entry(resource_id=str(i)) for i in range(4)])
    assert _verify_anchored(anchors)[0] == 0
    saved = anchors.read_text()
    _tamper("UPDATE audit_auditevent SET id = 9000000000 WHERE chain_id = 1 AND seq = %s", [seq])
    code, output = _verify_anchored(anchors)
    assert code == 1 and "Audit trail tampered with" in output
    assert f"REORDERED record #{seq} of chain primary: its id 9000000000 was never issued" in output
    if seq < 4:  # the record after it is out of order too
        assert "REORDERED record #3 of chain primary" in output and "(id 9000000000)" in output
    assert anchors.read_text() == saved  # a failed verify keeps the old anchors
    assert json.loads(saved)["chains"]["primary"][0] == 4


def test_intact_chains_interleaved_across_partitions_verify_clean():
    """Ids rise over the whole trail, seq per chain: chains written in turn, in two partitions, are intact."""
    audit_chain_open(name="host:1:aaaa")
    audit_chain_open(name="host:2:bbbb")
    for round_ in range(3):
        audit_record_batch([_entry(), _entry(recorded_at=FAR)], chain="host:1:aaaa")
        audit_record_batch([_entry(recorded_at=FAR)])
        audit_record_batch([_entry(), _entry(resource_id=str(round_))], chain="host:2:bbbb")
    report = audit_chain_verify()
    assert report.ok and report.chains == 3 and not report.misordered_ids and not report.ids_past_sequence
    code, output = run_verify()
    assert code == 0 and "Audit trail intact" in output


def test_the_walk_reads_in_chunks_not_a_query_per_record():
    audit_record_batch([_entry(resource_id=str(i)) for i in range(3)])
    with CaptureQueriesContext(connection) as few:
        assert audit_chain_verify().ok
    audit_record_batch([_entry(resource_id=str(i)) for i in range(60)])
    with CaptureQueriesContext(connection) as many:
        assert audit_chain_verify().ok
    assert len(many) == len(few)
