"""`audit archive`: whole past months moved out to files that stay verifiable, and dropped from the database
without breaking `audit verify` (real PostgreSQL; the months' partitions are made for past months, as the
partition task makes them ahead, and the records back-dated through the services)."""

import gzip
import json
from datetime import UTC, date, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from apps.audit.archive import (
    ARCHIVE_FIELDS,
    ArchiveRefused,
    archive_drop,
    archive_export,
    archive_months,
    archive_seal,
)
from apps.audit.models import AuditArchive, AuditChainHead, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import (
    GENESIS_HASH,
    AuditEntry,
    audit_partitions_ensure,
    audit_record_batch,
    head_seal,
    query_digest,
)
from apps.clinical.services import patient_create
from tests.helpers import embedded_env, manage

pytestmark = pytest.mark.django_db

JAN, FEB, MAR = "audit_auditevent_y2025m01", "audit_auditevent_y2025m02", "audit_auditevent_y2025m03"


def _entry(at: datetime, **fields) -> AuditEntry:
    return AuditEntry(
        **{"actor_type": "client", "actor_id": 1, "actor_name": "ward-app", "action": "read",
           "resource_type": "Patient", "source_ip": "10.1.2.3", "recorded_at": at, **fields}
    )  # fmt: skip


def _day(month: int, day: int = 10) -> datetime:
    return datetime(2025, month, day, tzinfo=UTC)


def _sql(*statements: str) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _exists(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [table])
        return cursor.fetchone()[0] is not None


def _archive(folder: Path, before: str, *extra: str) -> str:
    out = StringIO()
    call_command("audit", "archive", "--before", before, "--to", str(folder), *extra, stdout=out, stderr=StringIO())
    return out.getvalue()


def _verify(*extra: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("audit", "verify", *extra, stdout=out)
    except CommandError as error:
        return 1, out.getvalue() + str(error)
    return 0, out.getvalue()


@pytest.fixture
def months() -> str:
    """January to March 2025 with partitions of their own; a process chain registered in January (as
    audit_chain_open does, back-dated) with records in January and February; primary's records in all three,
    one January record sealed after a February one (a request that began on the 31st); then this month's records.
    Returns the process chain's name."""
    assert audit_partitions_ensure(months_ahead=2, today=date(2025, 1, 1)) == [JAN, FEB, MAR]
    audit_record_batch([_entry(_day(1, 5)), _entry(_day(1, 6))])
    head = AuditChainHead.objects.create(name="host:1:aaaa", seq=0, last_hash=GENESIS_HASH,
                                         seal=head_seal("host:1:aaaa", 0, GENESIS_HASH))  # fmt: skip
    audit_record_batch([
        _entry(_day(1, 7), actor_type="system", actor_id=None, actor_name="audit-writer", action="create",
               resource_type="AuditChain", resource_id=str(head.pk), source_ip=None)
    ])  # fmt: skip
    audit_record_batch([_entry(_day(1, 8)), _entry(_day(1, 9))], chain="host:1:aaaa")
    audit_record_batch([_entry(_day(2, 1)), _entry(datetime(2025, 1, 31, 23, 59, 59, 999999, tzinfo=UTC))])
    audit_record_batch([_entry(_day(2, 3))], chain="host:1:aaaa")
    audit_record_batch([_entry(_day(3, 3)), _entry(_day(3, 4))])
    audit_record_batch([_entry(timezone.now())])
    audit_record_batch([_entry(timezone.now())], chain="host:1:aaaa")
    assert audit_chain_verify().ok
    return "host:1:aaaa"


def test_archive_and_drop_leave_a_trail_that_verifies(months, tmp_path):
    out = _archive(tmp_path, "2025-02", "--drop")
    assert f"ARCHIVED {JAN}: 6 record(s)" in out and "partition dropped" in out
    assert not _exists(JAN) and _exists(FEB)
    status, report = _verify()
    assert status == 0, report
    assert "6 more in 1 archive(s)" in report

    out = _archive(tmp_path, "2025-04", "--drop")
    assert f"ARCHIVED {FEB}: 2 record(s)" in out and f"ARCHIVED {MAR}: 2 record(s)" in out
    assert not _exists(FEB) and not _exists(MAR)
    archives = list(AuditArchive.objects.values_list("partition", flat=True))
    assert archives == [JAN, FEB, MAR]
    # The January file holds primary's #1-#3 and #5 (sealed after February's #4): two runs, each linked.
    jan = AuditArchive.objects.get(partition=JAN)
    primary = AuditChainHead.objects.get(name="primary")
    assert [run[0::2] for run in jan.chains[str(primary.pk)]] == [[1, 3], [5, 5]]
    assert jan.registered_chains == [AuditChainHead.objects.get(name=months).pk]
    # Each drop is a sealed record of the primary chain.
    assert AuditEvent.objects.filter(chain_id=primary.pk, resource_type="AuditArchive", action="delete").count() == 3
    status, report = _verify("--archives", str(tmp_path))
    assert status == 0, report
    assert "10 more in 3 archive(s), files verified" in report
    manifest = json.loads((tmp_path / f"{JAN}.manifest.json").read_text())
    assert manifest["rows"] == 6 and manifest["sha256"] == jan.sha256 and manifest["chains"] == jan.chains


def test_a_chain_wholly_archived_is_neither_a_gap_nor_unregistered(tmp_path):
    """A process chain that ended in January (its process is gone): registered, written and archived in January,
    nothing of it left in the database but its head."""
    audit_partitions_ensure(months_ahead=0, today=date(2025, 1, 1))
    head = AuditChainHead.objects.create(name="host:2:bbbb", seq=0, last_hash=GENESIS_HASH,
                                         seal=head_seal("host:2:bbbb", 0, GENESIS_HASH))  # fmt: skip
    audit_record_batch([
        _entry(_day(1), actor_type="system", actor_id=None, actor_name="audit-writer", action="create",
               resource_type="AuditChain", resource_id=str(head.pk), source_ip=None)
    ])  # fmt: skip
    audit_record_batch([_entry(_day(1, 2)), _entry(_day(1, 3))], chain="host:2:bbbb")
    _archive(tmp_path, "2025-02", "--drop")
    assert not AuditEvent.objects.filter(chain_id=head.pk).exists()
    status, report = _verify("--archives", str(tmp_path))
    assert status == 0, report
    # Its head moved on without the key afterwards: still a cut.
    AuditChainHead.objects.filter(pk=head.pk).update(seq=3)
    report = audit_chain_verify()
    assert report.forged_heads == ["host:2:bbbb"] and report.missing == [("host:2:bbbb", 3, 3)]


def test_the_files_hold_the_records_columns_and_no_patient_identifier(tmp_path):
    audit_partitions_ensure(months_ahead=0, today=date(2025, 1, 1))
    patient = patient_create(mrn="MRN-424242", family_name="Quintrell", given_name="Ada", birth_date=date(1980, 1, 2),
                             sex="female")  # fmt: skip
    audit_record_batch([
        _entry(_day(1), patient_id=patient.pk),
        _entry(_day(1), action="search", query_digest=query_digest({"identifier": patient.mrn}),
               patient_ids=[patient.pk, patient.pk + 1], result_count=2),
    ])  # fmt: skip
    _archive(tmp_path, "2025-02")
    text = gzip.decompress((tmp_path / f"{JAN}.jsonl.gz").read_bytes()).decode()
    rows = [json.loads(line) for line in text.splitlines()]
    assert [tuple(row) for row in rows] == [ARCHIVE_FIELDS, ARCHIVE_FIELDS]
    assert rows[0]["patient_id"] == patient.pk and rows[1]["patient_ids"] == [patient.pk, patient.pk + 1]
    files = text + (tmp_path / f"{JAN}.manifest.json").read_text()
    assert "MRN-424242" not in files and "424242" not in files and "Quintrell" not in files


def test_progress_says_how_many_records_of_each_month_were_exported(months, tmp_path):
    err = StringIO()
    call_command("audit", "archive", "--before", "2025-03", "--to", str(tmp_path), "--progress", stdout=StringIO(),
                 stderr=err)  # fmt: skip
    lines = err.getvalue().splitlines()
    assert any(line.startswith(f"audit archive {JAN}: 6 ") for line in lines), lines
    assert any(line.startswith(f"audit archive {FEB}: 2 ") for line in lines), lines


def test_without_drop_only_the_files_are_written_and_a_rerun_keeps_them(months, tmp_path):
    out = _archive(tmp_path, "2025-03")
    assert "partition kept (no --drop)" in out and _exists(JAN) and _exists(FEB)
    assert not AuditArchive.objects.exists()
    first = (tmp_path / f"{JAN}.jsonl.gz").read_bytes()
    assert "kept the identical file" in _archive(tmp_path, "2025-03")
    assert (tmp_path / f"{JAN}.jsonl.gz").read_bytes() == first
    assert audit_chain_verify().ok


def test_a_partial_file_left_by_a_crash_never_counts(months, tmp_path):
    """A crash mid-export: a partial file left beside the final name, which never counts. A file cut short under
    its final name (a copy interrupted) is not replaced either: the month is refused until someone moves it aside;
    the rerun then writes the month again, checks it and archives it."""
    _archive(tmp_path, "2025-02")
    whole = (tmp_path / f"{JAN}.jsonl.gz").read_bytes()
    (tmp_path / f"{JAN}.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / f".{JAN}.jsonl.gz.partial").write_bytes(b"half a month")
    (tmp_path / f"{JAN}.manifest.json").unlink()
    with pytest.raises(CommandError):
        _archive(tmp_path, "2025-02", "--drop")
    assert (tmp_path / f"{JAN}.jsonl.gz").read_bytes() == whole[: len(whole) // 2] and _exists(JAN)
    (tmp_path / f"{JAN}.jsonl.gz").unlink()
    out = _archive(tmp_path, "2025-02", "--drop")
    assert f"ARCHIVED {JAN}: 6 record(s), wrote" in out
    assert (tmp_path / f"{JAN}.jsonl.gz").read_bytes() == whole
    assert not (tmp_path / f".{JAN}.jsonl.gz.partial").exists()
    assert _verify("--archives", str(tmp_path))[0] == 0


def test_an_edited_archive_file_is_found_by_verify_archives(months, tmp_path):
    _archive(tmp_path, "2025-02", "--drop")
    path = tmp_path / f"{JAN}.jsonl.gz"
    rows = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    rows[1]["actor_name"] = "someone else"
    path.write_bytes(gzip.compress("".join(json.dumps(row) + "\n" for row in rows).encode()))
    assert _verify()[0] == 0  # the database alone cannot see the file
    status, report = _verify("--archives", str(tmp_path))
    assert status == 1 and "tampered" in report
    primary = AuditChainHead.objects.get(name="primary").pk
    assert f"EDITED   record #{rows[1]['seq']} of chain {primary} in archive file {path}" in report
    assert f"ALTERED  archive file {path}: its SHA-256 is not the one archived" in report


def test_a_missing_archive_file_is_reported(months, tmp_path):
    _archive(tmp_path, "2025-03", "--drop")
    (tmp_path / f"{FEB}.jsonl.gz").unlink()
    status, report = _verify("--archives", str(tmp_path))
    assert status == 1 and f"MISSING  archive file {tmp_path / f'{FEB}.jsonl.gz'} of partition {FEB}" in report


def test_verify_still_reports_what_archives_do_not_cover(months, tmp_path):
    """A deletion in a month still in the database, an archive record made up without the key, and one (sealed)
    covering records that are still there: each is reported, none passes as archived."""
    _archive(tmp_path, "2025-02", "--drop")
    _sql(f'ALTER TABLE "{FEB}" DISABLE TRIGGER audit_event_append_only',
         f"DELETE FROM \"{FEB}\" WHERE seq = 4 AND chain_id = (SELECT id FROM audit_auditchainhead WHERE name = "  # noqa: S608
         "'primary')",
         f'ALTER TABLE "{FEB}" ENABLE TRIGGER audit_event_append_only')  # fmt: skip
    status, report = _verify()
    assert status == 1 and "DELETED  record(s) #4 of chain primary:" in report

    primary = AuditChainHead.objects.get(name="primary")
    march = list(AuditEvent.objects.filter(chain_id=primary.pk, seq__in=[6, 7]).order_by("seq"))
    fields = {
        "partition": MAR, "range_start": _day(3, 1), "range_end": _day(4, 1), "file_name": "x.jsonl.gz",
        "sha256": "0" * 64, "row_count": 2, "registered_chains": [],
        "chains": {str(primary.pk): [[6, march[0].prev_hash, 7, march[1].hash]]},
    }  # fmt: skip
    AuditArchive.objects.create(**fields, archived_by="test", archived_at=timezone.now(), seal=archive_seal(**fields))
    AuditArchive.objects.create(**{**fields, "partition": "audit_auditevent_y2024m12", "seal": "f" * 64},
                                archived_by="test", archived_at=timezone.now())  # fmt: skip
    report = audit_chain_verify()
    assert report.archive_overlaps == [("primary", 6), ("primary", 7)]
    assert report.forged_archives == ["audit_auditevent_y2024m12"]
    assert report.missing == [("primary", 4, 4)]


def test_the_current_month_is_refused(months, tmp_path):
    today = timezone.now().date()
    next_month = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    with pytest.raises(CommandError, match="current month"):
        _archive(tmp_path, f"{next_month:%Y-%m}", "--drop")
    assert not list(tmp_path.iterdir()) and not AuditArchive.objects.exists()
    # Up to the current month: every past month, never the current one.
    assert [name for name, _, _ in archive_months(before=today.replace(day=1))][:3] == [JAN, FEB, MAR]
    current = f"audit_auditevent_y{today.year}m{today.month:02d}"
    assert current not in [name for name, _, _ in archive_months(before=today.replace(day=1))]


def test_a_month_with_an_edited_record_is_not_archived(months, tmp_path):
    _sql(f'ALTER TABLE "{FEB}" DISABLE TRIGGER audit_event_append_only',
         f"UPDATE \"{FEB}\" SET actor_name = 'someone else' WHERE seq = 4",  # noqa: S608
         f'ALTER TABLE "{FEB}" ENABLE TRIGGER audit_event_append_only')  # fmt: skip
    with pytest.raises(CommandError, match="Not every month"):
        out = StringIO()
        call_command("audit", "archive", "--before", "2025-04", "--to", str(tmp_path), "--drop", stdout=out)
    assert f"REFUSED  {FEB}: record #4 of chain" in out.getvalue()
    assert not _exists(JAN) and _exists(FEB) and _exists(MAR)  # January went; nothing after the refusal
    assert not (tmp_path / f"{FEB}.jsonl.gz").exists()


def test_a_month_holding_an_unacknowledged_chain_break_is_not_dropped(tmp_path):
    """Dropped, the break would vanish from `audit verify`: it is looked into (acknowledged) first."""
    audit_partitions_ensure(months_ahead=0, today=date(2025, 1, 1))
    (cut,) = audit_record_batch([
        _entry(_day(1), actor_type="system", actor_id=None, actor_name="audit-writer", action="delete",
               resource_type="AuditChain", resource_id="7", outcome="error", result_count=2, source_ip=None)
    ])  # fmt: skip
    out = StringIO()
    with pytest.raises(CommandError, match="Not every month"):
        call_command("audit", "archive", "--before", "2025-02", "--to", str(tmp_path), "--drop", stdout=out)
    assert f"holds the chain break of record {cut.pk}, not yet acknowledged" in out.getvalue()
    assert _exists(JAN) and not AuditArchive.objects.exists()
    call_command("audit", "acknowledge-break", str(cut.pk), "--by", "J. Smith", stdout=StringIO())
    assert "partition dropped" in _archive(tmp_path, "2025-02", "--drop")
    assert audit_chain_verify(archives=tmp_path).ok


def test_records_written_into_the_month_after_its_export_stop_the_drop(months, tmp_path):
    start, end = _day(1, 1), _day(2, 1)
    exported = archive_export(partition=JAN, start=start, end=end, directory=tmp_path)
    audit_record_batch([_entry(_day(1, 30))])  # a late record back-dated into January
    with pytest.raises(ArchiveRefused, match="changed since it was exported"):
        archive_drop(exported=exported, by="test")
    assert _exists(JAN) and not AuditArchive.objects.exists()


def test_records_left_in_the_default_partition_are_named(tmp_path):
    audit_record_batch([_entry(_day(6)), _entry(_day(6))])  # no partition for June 2025: the default one
    out = _archive(tmp_path, "2025-07")
    assert "NOTE     2 record(s) before 2025-07 are in the default partition" in out


def test_the_audit_list_still_works_after_a_drop(months, tmp_path, api, issue_token):
    _archive(tmp_path, "2025-04", "--drop")
    response = api.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {issue_token('audit:read')}")
    assert response.status_code == 200, response.content
    listed = response.json()["results"]
    assert listed and all(row["recorded_at"] >= f"{timezone.now():%Y-%m}" for row in listed)


@pytest.mark.parametrize("before", ["2025-13", "2025-1", "January"])
def test_a_before_that_is_no_month_is_refused(tmp_path, before):
    with pytest.raises(CommandError, match="--before must be a month"):
        _archive(tmp_path, before)
    assert not list(tmp_path.iterdir())


def test_archive_needs_postgresql(tmp_path):
    result = manage("audit", "archive", "--before", "2025-02", "--to", str(tmp_path / "out"),
                    env=embedded_env(tmp_path / "var"))  # fmt: skip
    assert result.returncode != 0
    assert "Archiving needs PostgreSQL" in result.stderr and "sqlite" in result.stderr
