"""`audit archive` under a review's findings: files never replaced, tampered months never dropped, failures that
say what was done, private files (real PostgreSQL; the fixtures of test_archive)."""

import gzip
import json
import os
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit import archive
from apps.audit.models import AuditArchive, AuditChainHead
from apps.audit.services import audit_record_batch
from tests.audit.test_archive import FEB, JAN, _archive, _day, _entry, _exists, _sql, _verify, months  # noqa: F401

pytestmark = pytest.mark.django_db


def _refused(folder, before: str, *extra: str) -> str:
    """Run an archive that must fail: what it printed, then the error."""
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("audit", "archive", "--before", before, "--to", str(folder), *extra, stdout=out, stderr=StringIO())
    return out.getvalue() + str(error.value)


@pytest.mark.usefixtures("months")
def test_a_dropped_months_only_file_is_never_replaced(tmp_path):
    """A folder already holding another January (another deployment's, an earlier export of other records): the
    export of this January is refused and that file keeps its bytes; a January made again after its drop is never
    archived a second time."""
    other = tmp_path / "other"
    _archive(other, "2025-02")
    audit_record_batch([_entry(_day(1, 20))])  # this January is now another export
    folder = tmp_path / "shared"
    folder.mkdir()
    for name in (f"{JAN}.jsonl.gz", f"{JAN}.manifest.json"):
        (folder / name).write_bytes((other / name).read_bytes())
    kept = (folder / f"{JAN}.jsonl.gz").read_bytes()
    assert "is never replaced" in _refused(folder, "2025-02", "--drop")
    assert (folder / f"{JAN}.jsonl.gz").read_bytes() == kept and _exists(JAN) and not AuditArchive.objects.exists()
    assert not (folder / f".{JAN}.jsonl.gz.partial").exists()
    (folder / f"{JAN}.jsonl.gz").unlink()
    (folder / f"{JAN}.manifest.json").unlink()
    assert "partition dropped" in _archive(folder, "2025-02", "--drop")
    kept = (folder / f"{JAN}.jsonl.gz").read_bytes()
    _sql(f"CREATE TABLE \"{JAN}\" PARTITION OF audit_auditevent FOR VALUES FROM ('2025-01-01') TO ('2025-02-01')")
    audit_record_batch([_entry(_day(1, 21))])
    assert "No monthly partition before 2025-02 to archive." in _archive(folder, "2025-02", "--drop")
    assert (folder / f"{JAN}.jsonl.gz").read_bytes() == kept


@pytest.mark.usefixtures("months")
def test_a_file_with_edited_ids_is_never_kept_as_identical(tmp_path):
    """Ids are not in the HMAC: a file whose ids were edited holds the same seals, yet is another file."""
    _archive(tmp_path, "2025-02")
    path = tmp_path / f"{JAN}.jsonl.gz"
    rows = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    for row in rows:
        row["id"] += 1000
    path.write_bytes(gzip.compress("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()))
    assert "is never replaced" in _refused(tmp_path, "2025-02", "--drop")
    assert [json.loads(line)["id"] for line in gzip.decompress(path.read_bytes()).decode().splitlines()] == [
        row["id"] for row in rows
    ]
    assert _exists(JAN) and not AuditArchive.objects.exists()


@pytest.mark.usefixtures("months")
def test_a_manifest_of_another_deployment_is_refused_and_reported(tmp_path):
    _archive(tmp_path, "2025-02", "--drop")
    manifest_path = tmp_path / f"{JAN}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["deployment"] == archive.archive_deployment()
    assert manifest["deployment"].endswith("/" + connection.settings_dict["NAME"])
    assert _verify("--archives", str(tmp_path))[0] == 0
    manifest["deployment"] = "1234/elsewhere"
    manifest_path.write_text(json.dumps(manifest))
    status, report = _verify("--archives", str(tmp_path))
    assert status == 1 and f"FOREIGN  manifest {manifest_path}: names deployment 1234/elsewhere" in report


@pytest.mark.usefixtures("months")
def test_a_rehearsal_in_a_folder_of_another_deployment_is_refused(tmp_path):
    _archive(tmp_path, "2025-02")
    manifest_path = tmp_path / f"{JAN}.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["deployment"] = "1234/elsewhere"
    manifest_path.write_text(json.dumps(manifest))
    assert "names deployment 1234/elsewhere, not this one" in _refused(tmp_path, "2025-02", "--drop")
    assert _exists(JAN) and json.loads(manifest_path.read_text())["deployment"] == "1234/elsewhere"


def _tamper(*statements: str) -> None:
    _sql(f'ALTER TABLE "{JAN}" DISABLE TRIGGER audit_event_append_only', *statements,
         f'ALTER TABLE "{JAN}" ENABLE TRIGGER audit_event_append_only')  # fmt: skip


def _primary() -> int:
    return AuditChainHead.objects.get(name="primary").pk


@pytest.mark.usefixtures("months")
@pytest.mark.parametrize(
    ("change", "finding"),
    [
        ('UPDATE "{jan}" SET id = -id WHERE chain_id = {primary} AND seq = 2', "REORDERED record #2 of"),
        ('UPDATE "{jan}" SET id = 900000000 WHERE chain_id = {primary} AND seq = 5', "was never issued"),
        ('DELETE FROM "{jan}" WHERE chain_id = {primary} AND seq = 2', "DELETED records #2-#2 of chain primary"),
    ],
    ids=["ids-changed", "id-past-sequence", "record-deleted"],
)
def test_a_month_verify_reports_is_exported_but_never_dropped(tmp_path, change, finding):
    _tamper(change.format(jan=JAN, primary=_primary()))
    assert _verify()[0] == 1
    out = _refused(tmp_path, "2025-03", "--drop")
    assert f"REFUSED  {JAN}: `audit verify` reports" in out and finding in out and "not dropped" in out
    assert _exists(JAN) and _exists(FEB) and not AuditArchive.objects.exists()  # later months left alone too
    assert _verify()[0] == 1  # the finding is still there to look into


@pytest.mark.usefixtures("months")
def test_a_finding_in_a_later_month_does_not_hold_up_an_earlier_one(tmp_path):
    _sql(f'ALTER TABLE "{FEB}" DISABLE TRIGGER audit_event_append_only')
    assert _verify()[0] == 1  # WRITABLE: February's, not January's
    assert "partition dropped" in _archive(tmp_path, "2025-02", "--drop")
    assert not _exists(JAN)
    assert f"REFUSED  {FEB}: `audit verify` reports WRITABLE table {FEB}" in _refused(tmp_path, "2025-03", "--drop")
    assert _exists(FEB)


@pytest.mark.usefixtures("months")
def test_a_month_that_cannot_be_written_stops_the_run_and_says_what_was_done(tmp_path):
    """An OSError part-way (a disk full, here February's file name taken by a folder): what was done before it is
    printed (January dropped), February is left as it was with no partial file (PHI) behind, the exit is non-zero."""
    (tmp_path / f"{FEB}.jsonl.gz").mkdir()
    out = _refused(tmp_path, "2025-03", "--drop")
    assert f"ARCHIVED {JAN}: 6 record(s), wrote" in out and "partition dropped" in out
    assert f"Archiving stopped at {FEB}, left as it was" in out and "could not be written" in out
    assert not _exists(JAN) and _exists(FEB) and list(AuditArchive.objects.values_list("partition", flat=True)) == [JAN]
    assert not [path.name for path in tmp_path.iterdir() if path.name.endswith(".partial")]


@pytest.mark.usefixtures("months")
def test_to_a_file_is_a_clear_error(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    out = _refused(target, "2025-02", "--drop")
    assert f"Archiving stopped at {JAN}" in out and "could not be written" in out and _exists(JAN)


@pytest.mark.parametrize("before", ["0000-01", "0001-01", "1969-12"])
def test_a_month_before_any_record_is_a_clear_error(tmp_path, before):
    with pytest.raises(CommandError, match="from 1970-01 on"):
        call_command("audit", "archive", "--before", before, "--to", str(tmp_path), stdout=StringIO())


@pytest.mark.usefixtures("months")
def test_the_folder_and_files_are_private(tmp_path):
    """They hold PHI: the folder made 0700, every file 0600, whatever the umask lets others read."""
    umask = os.umask(0o022)
    try:
        _archive(tmp_path / "out", "2025-03", "--drop")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "out").iterdir()}
    assert len(modes) == 4 and set(modes.values()) == {0o600}, modes


@pytest.mark.usefixtures("months")
@pytest.mark.parametrize(
    ("trigger", "line"),
    [
        ("audit_archive_kept", "WRITABLE table audit_auditarchive"),
        ("audit_refuse_truncate", "UNGUARDED table audit_auditarchive"),
    ],
)
def test_the_archive_tables_triggers_disabled_are_reported(tmp_path, trigger, line):
    _archive(tmp_path, "2025-02", "--drop")
    assert _verify()[0] == 0
    _sql(f"ALTER TABLE audit_auditarchive DISABLE TRIGGER {trigger}")
    status, report = _verify()
    assert status == 1 and line in report
