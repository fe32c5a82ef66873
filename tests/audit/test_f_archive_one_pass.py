"""`audit archive` at a hospital's scale: each record's HMAC is recomputed once per export (from the file read
back, the bytes that are kept), none while the partition is locked for the drop; the lines PostgreSQL builds say
exactly what the rows hold, whatever their characters; a file an earlier version wrote (another gzip level) with
the same records is still kept as it is (real PostgreSQL, records back-dated through the services)."""

import gzip
import json
from datetime import UTC, date, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.audit import archive
from apps.audit.archive import ARCHIVE_FIELDS
from apps.audit.models import AuditArchive
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import AuditEntry, audit_partitions_ensure, audit_record_batch, chain_hash

pytestmark = pytest.mark.django_db

JAN = "audit_auditevent_y2025m01"


def _entry(day: int, **fields) -> AuditEntry:
    return AuditEntry(
        **{"actor_type": "client", "actor_id": 1, "actor_name": "ward-app", "action": "read",
           "resource_type": "Patient", "source_ip": "10.1.2.3", "recorded_at": datetime(2025, 1, day, tzinfo=UTC),
           **fields}
    )  # fmt: skip


def _archive(folder: Path, *extra: str) -> str:
    out = StringIO()
    call_command("audit", "archive", "--before", "2025-02", "--to", str(folder), *extra, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def january() -> int:
    audit_partitions_ensure(months_ahead=0, today=date(2025, 1, 1))
    audit_record_batch([_entry(day) for day in range(1, 8)])
    return 7


def test_an_archive_recomputes_each_records_hmac_once(january, tmp_path, monkeypatch):
    """The old export sealed every record twice (the row from the database, then its line read back): a month's
    HMACs were a third of its time. The line read back is what the archive keeps, so it is the one checked."""
    calls = []

    real_check = archive.record_sealed_by

    def counting(values: dict, *args) -> tuple[str | None, bool]:
        calls.append(values["seq"])
        return real_check(values, *args)

    monkeypatch.setattr(archive, "record_sealed_by", counting)
    out = _archive(tmp_path, "--drop")
    assert f"ARCHIVED {JAN}: {january} record(s)" in out and "partition dropped" in out
    assert sorted(calls) == list(range(1, january + 1))  # once each, none under the drop's lock
    assert audit_chain_verify(archives=tmp_path).ok


def test_lines_built_by_the_database_hold_any_characters_and_verify(tmp_path):
    audit_partitions_ensure(months_ahead=0, today=date(2025, 1, 1))
    odd = 'Zoë "Q" \\ O\'Brien\n\t\u2028 日本'
    audit_record_batch([
        _entry(3, actor_name=odd, resource_id=odd, request_id="r\\1", query_digest='{"a": 1}', source_ip="::1",
               patient_ids=[3, 41], result_count=2, served_from_cache=True),
        _entry(4, source_ip="2001:db8::ffff:1.2.3.4", recorded_at=datetime(2025, 1, 31, 23, 59, 59, 999999, UTC)),
    ])  # fmt: skip
    assert "partition dropped" in _archive(tmp_path, "--drop")
    rows = [json.loads(line) for line in gzip.decompress((tmp_path / f"{JAN}.jsonl.gz").read_bytes()).splitlines()]
    assert [tuple(row) for row in rows] == [ARCHIVE_FIELDS, ARCHIVE_FIELDS]
    assert rows[0]["actor_name"] == odd and rows[0]["resource_id"] == odd and rows[0]["patient_ids"] == [3, 41]
    assert rows[0]["served_from_cache"] is True and rows[0]["result_count"] == 2
    assert rows[1]["recorded_at"] == "2025-01-31T23:59:59.999999+00:00"
    assert all(chain_hash(row) == row["hash"] for row in rows)
    assert audit_chain_verify(archives=tmp_path).ok


def test_a_file_written_at_another_gzip_level_is_not_replaced(january, tmp_path):
    """Only a byte-identical file is kept: the same records compressed otherwise are not compared record by record
    (fields outside the HMAC, the ids, could differ), and the file is never replaced either: the month is refused."""
    _archive(tmp_path)
    path = tmp_path / f"{JAN}.jsonl.gz"
    earlier = gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=9, mtime=0)
    path.write_bytes(earlier)
    with pytest.raises(CommandError):
        _archive(tmp_path, "--drop")
    assert path.read_bytes() == earlier and not AuditArchive.objects.exists()


def test_a_line_holding_two_records_is_no_archived_record(january, tmp_path):
    """Lines are parsed a block at a time: two records joined on one line (or an empty line) are still refused."""
    _archive(tmp_path, "--drop")
    path = tmp_path / f"{JAN}.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    for edited in ([lines[0] + b"," + lines[1], *lines[2:]], [lines[0], b"", *lines[1:]]):
        path.write_bytes(gzip.compress(b"\n".join(edited)))
        report = audit_chain_verify(archives=tmp_path)
        assert not report.ok
        assert any("unreadable (ValueError)" in problem for problem in report.archive_problems), report
