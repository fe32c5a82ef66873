"""`audit archive` beside the trail's other users: concurrent runs take turns on an advisory lock (which no audit
write waits on), and a drop whose lock on the trail is not granted in time gives up instead of stalling every
audit INSERT queued behind it. Sessions of their own, so committed partitions (dropped again afterwards)."""

import threading
import time
from datetime import UTC, date, datetime
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection, connections

from apps.audit.archive import ARCHIVE_LOCK
from apps.audit.models import AuditArchive, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import AuditEntry, audit_partitions_ensure, audit_record_batch
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

JAN = "audit_auditevent_y2025m01"


def _entry(at: datetime | None = None) -> AuditEntry:
    extra = {"recorded_at": at} if at else {}
    return AuditEntry(actor_type="client", actor_id=1, actor_name="ward-app", action="read", resource_type="Patient",
                      **extra)  # fmt: skip


def _exists(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [table])
        return cursor.fetchone()[0] is not None


@pytest.fixture
def january():
    audit_partitions_ensure(months_ahead=0, today=date(2025, 1, 1))
    audit_record_batch([_entry(datetime(2025, 1, 10, tzinfo=UTC)), _entry(datetime(2025, 1, 11, tzinfo=UTC))])
    yield
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE IF EXISTS "{JAN}"')


def _other_session() -> psycopg.Connection:
    return psycopg.connect(**connection.get_connection_params(), autocommit=True)


def test_a_drop_behind_a_long_reader_gives_up_and_a_rerun_finishes(january, tmp_path):
    with _other_session() as reader, reader.transaction():
        reader.execute("SELECT 1 FROM audit_auditevent LIMIT 1")  # a pg_dump, say: the trail held open
        with pytest.raises(CommandError, match="not granted in time"):
            call_command("audit", "archive", "--before", "2025-02", "--to", str(tmp_path), "--drop",
                         stdout=StringIO())  # fmt: skip
        # Nothing half done: the partition is there, no archive record, no record of one in the chain.
        assert _exists(JAN) and not AuditArchive.objects.exists()
        assert not AuditEvent.objects.filter(resource_type="AuditArchive").exists()
    out = StringIO()
    call_command("audit", "archive", "--before", "2025-02", "--to", str(tmp_path), "--drop", stdout=out)
    assert f"ARCHIVED {JAN}: 2 record(s), kept the identical file" in out.getvalue()
    assert not _exists(JAN) and audit_chain_verify(archives=tmp_path).ok


def _archive_and_drop(directory) -> str:
    """`audit archive --before 2025-02 --drop` as an operator runs it: what it printed."""
    out = StringIO()
    call_command("audit", "archive", "--before", "2025-02", "--to", str(directory), "--drop", stdout=out)
    return out.getvalue()


def test_concurrent_runs_take_turns_and_audit_writes_go_on(january, tmp_path):
    outcome = {}

    with _other_session() as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", [ARCHIVE_LOCK])  # another run, mid-way
        runner = _in_thread(lambda: _archive_and_drop(tmp_path), outcome)

        def waiting() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                return cursor.fetchone() is not None

        wait_for(waiting, 60, "the second run waiting for its turn")
        audit_record_batch([_entry()])  # an audit write while it waits: not held up
        assert _exists(JAN) and not outcome
        other.execute("SELECT pg_advisory_unlock(hashtext(%s))", [ARCHIVE_LOCK])
        runner.join(120)
    assert "error" not in outcome, outcome
    assert f"ARCHIVED {JAN}: 2 record(s)" in outcome["done"] and not _exists(JAN)
    assert audit_chain_verify(archives=tmp_path).ok


_COLUMNS = (
    "chain_id, seq, recorded_at, actor_type, actor_id, actor_name, action, resource_type, resource_id, patient_id, "
    "outcome, source_ip, purpose_of_use, request_id, query_digest, result_count, served_from_cache, prev_hash, "
    "patient_ids, hash"
)


def _january_exported(tmp_path):
    from apps.audit.archive import archive_export, archive_months

    ((partition, start, end),) = archive_months(before=date(2025, 2, 1))
    return archive_export(partition=partition, start=start, end=end, directory=tmp_path)


def _in_thread(target, outcome: dict) -> threading.Thread:
    def run() -> None:
        try:
            outcome["done"] = target()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _waiting(kind: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = %s", [kind])
        return cursor.fetchone()[0] > 0


def _a_january_record() -> tuple:
    """One of the month's records as its columns, read before the test locks the month."""
    with _other_session() as reader:
        return reader.execute(f'SELECT {_COLUMNS} FROM "{JAN}" ORDER BY seq LIMIT 1').fetchone()  # noqa: S608


def _insert_copy(writer: psycopg.Connection, record: tuple, *, recorded_at: datetime) -> None:
    """The record again, 100 further in its chain, recorded at `recorded_at`: its partition decides where it goes."""
    values = list(record)
    values[1] += 100
    values[2] = recorded_at
    placeholders = ", ".join(["%s"] * len(values))
    writer.execute(f"INSERT INTO audit_auditevent ({_COLUMNS}) VALUES ({placeholders})", values)  # noqa: S608


def test_audit_writes_go_on_while_the_drop_reads_the_month_again(january, tmp_path):
    """The drop reads the month again under a lock, which takes as long as the month is big. It used to lock the
    whole trail (SHARE) for that read, so every PHI read's audit record waited for it (on the old code the INSERT
    below gave up after its 5 s); now only the partition is locked, and a record of today goes straight in."""
    from apps.audit.archive import archive_drop

    exported = _january_exported(tmp_path)
    record, outcome = _a_january_record(), {}
    with _other_session() as holder:
        holder.execute("BEGIN")
        holder.execute(f'LOCK TABLE "{JAN}" IN ACCESS EXCLUSIVE MODE')  # the drop's read of the month held here
        runner = _in_thread(lambda: archive_drop(exported=exported, by="test", lock_timeout="60s"), outcome)
        wait_for(lambda: _waiting("relation"), 60, "the drop waiting for the month")
        with _other_session() as writer:
            writer.execute("SET lock_timeout = '5s'")
            _insert_copy(writer, record, recorded_at=datetime.now(UTC))  # today's record: not held up
        holder.execute("COMMIT")
        runner.join(120)
    assert "error" not in outcome, outcome
    assert not _exists(JAN) and AuditArchive.objects.count() == 1


def test_a_back_dated_insert_during_the_drop_goes_in_and_the_month_stays(january, tmp_path):
    """A record back-dated into the month waits on the drop's lock on the month while holding the trail, which
    DETACH needs: the drop gives up within its short DETACH wait (under the server's deadlock_timeout, so the
    writer is never the one a deadlock check aborts), its transaction rolls back, and the INSERT goes through.
    The drop is held at the primary head (as a writer holds it) until the INSERT has waited past deadlock_timeout."""
    from apps.audit.archive import archive_drop

    exported = _january_exported(tmp_path)
    record, outcome, insert = _a_january_record(), {}, {}

    def late_insert() -> bool:
        with _other_session() as writer:
            _insert_copy(writer, record, recorded_at=datetime(2025, 1, 20, tzinfo=UTC))
        return True

    with _other_session() as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM audit_auditchainhead WHERE name = 'primary' FOR UPDATE")
        runner = _in_thread(lambda: archive_drop(exported=exported, by="test"), outcome)
        wait_for(lambda: _waiting("transactionid"), 60, "the drop waiting for the primary head")
        inserter = _in_thread(late_insert, insert)
        wait_for(lambda: _waiting("relation"), 60, "the late INSERT waiting for the month")
        time.sleep(3)  # the INSERT's deadlock check (deadlock_timeout, 1 s) has run, finding no cycle
        holder.execute("COMMIT")
        runner.join(120)
        inserter.join(120)
    assert "error" not in insert, insert
    assert isinstance(outcome.get("error"), OperationalError), outcome
    assert _exists(JAN) and not AuditArchive.objects.exists()
    assert not AuditEvent.objects.filter(resource_type="AuditArchive").exists()
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{JAN}"')  # noqa: S608
        assert cursor.fetchone()[0] == 3


def test_a_run_that_waited_its_turn_lists_the_months_left(january, tmp_path):
    """The months are listed once the lock is held: a run that waited while another dropped January finds nothing
    left to archive (it used to export the month it had listed first: `relation ... does not exist`)."""
    outcome = {}

    with _other_session() as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", [ARCHIVE_LOCK])  # the first run
        runner = _in_thread(lambda: _archive_and_drop(tmp_path), outcome)

        def waiting() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                return cursor.fetchone() is not None

        wait_for(waiting, 60, "the second run waiting for its turn")
        other.execute(f'ALTER TABLE audit_auditevent DETACH PARTITION "{JAN}"')  # the first run's drop
        other.execute(f'DROP TABLE "{JAN}"')
        other.execute("SELECT pg_advisory_unlock(hashtext(%s))", [ARCHIVE_LOCK])
        runner.join(120)
    assert "error" not in outcome, outcome
    assert "No monthly partition before 2025-02 to archive." in outcome["done"]


def test_a_back_dated_write_during_the_drops_read_holds_no_chain_up(january, tmp_path, monkeypatch):
    """A writer back-dating a record into the month takes its chain's head, then inserts. The drop held the month
    (SHARE) for its whole re-read, hours for a big month: the back-dated write waited on it holding the primary
    head, and every other write of that chain waited behind it (on the old code today's write below gave up on its
    3 s lock timeout). The re-read holds no lock now: both writes go in, and the drop refuses the changed month."""
    import apps.audit.archive as archive

    exported = _january_exported(tmp_path)
    reread = archive._partition_chunks
    reading, go_on = threading.Event(), threading.Event()

    def a_long_reread(query):  # a big month: the re-read takes a while
        reading.set()
        go_on.wait(60)
        yield from reread(query)

    monkeypatch.setattr(archive, "_partition_chunks", a_long_reread)
    drop, late = {}, {}
    runner = _in_thread(lambda: archive.archive_drop(exported=exported, by="test", lock_timeout="60s"), drop)
    assert reading.wait(60)
    writer = _in_thread(lambda: audit_record_batch([_entry(datetime(2025, 1, 20, tzinfo=UTC))]), late)
    wait_for(lambda: late or _waiting("relation"), 60, "the back-dated write done or waiting")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")
            try:
                audit_record_batch([_entry()])  # today's record, as every PHI read writes
            finally:
                cursor.execute("SET lock_timeout = 0")
    finally:
        go_on.set()
        runner.join(120)
        writer.join(120)
    assert "error" not in late, late
    assert isinstance(drop.get("error"), archive.ArchiveRefused), drop
    assert _exists(JAN) and not AuditArchive.objects.exists()


def test_a_record_added_after_the_drops_read_refuses_the_month(january, tmp_path, monkeypatch):
    """The drop's re-read takes no lock: a record back-dated into the month once that read has its snapshot is not
    in it, and the month, counted under its lock, differs: refused, nothing dropped (dropped, the record would be in
    no file)."""
    import apps.audit.archive as archive

    exported = _january_exported(tmp_path)
    record, summarize = _a_january_record(), archive._summarize

    def a_write_meanwhile(summary, rows):
        summarize(summary, rows)
        with _other_session() as writer:
            writer.execute("SET lock_timeout = '5s'")  # a drop holding the month through its read: an error, no hang
            _insert_copy(writer, record, recorded_at=datetime(2025, 1, 20, tzinfo=UTC))

    monkeypatch.setattr(archive, "_summarize", a_write_meanwhile)
    with pytest.raises(archive.ArchiveRefused, match="records changed since it was exported"):
        archive.archive_drop(exported=exported, by="test")
    assert _exists(JAN) and not AuditArchive.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{JAN}"')  # noqa: S608
        assert cursor.fetchone()[0] == 3
