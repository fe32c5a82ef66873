"""`audit archive` beside the trail's other users: concurrent runs take turns on an advisory lock (which no audit
write waits on), and a drop whose lock on the trail is not granted in time gives up instead of stalling every
audit INSERT queued behind it. Sessions of their own, so committed partitions (dropped again afterwards)."""

import threading
from datetime import UTC, date, datetime
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections

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


def test_concurrent_runs_take_turns_and_audit_writes_go_on(january, tmp_path):
    outcome = {}

    def archive() -> None:
        try:
            out = StringIO()
            call_command("audit", "archive", "--before", "2025-02", "--to", str(tmp_path), "--drop", stdout=out)
            outcome["out"] = out.getvalue()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc
        finally:
            connections.close_all()

    with _other_session() as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", [ARCHIVE_LOCK])  # another run, mid-way
        runner = threading.Thread(target=archive, daemon=True)
        runner.start()

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
    assert f"ARCHIVED {JAN}: 2 record(s)" in outcome["out"] and not _exists(JAN)
    assert audit_chain_verify(archives=tmp_path).ok


_COLUMNS = (
    "chain_id, seq, recorded_at, actor_type, actor_id, actor_name, action, resource_type, resource_id, patient_id, "
    "outcome, source_ip, purpose_of_use, request_id, query_digest, result_count, served_from_cache, prev_hash, "
    "patient_ids, hash"
)


def test_a_back_dated_insert_during_the_drop_does_not_deadlock(january, tmp_path):
    """A late record back-dated into the month arrives while the drop waits for its first lock (here the primary
    head, held by another session as a writer would). The drop used to lock the partition first, so the INSERT got
    the trail and waited on the partition while DETACH waited on the trail: `deadlock detected`. Taken in the
    writer's order, the INSERT goes through (or waits), and the drop sees the month changed and leaves it."""
    from apps.audit.archive import audit_archive

    outcome, insert = {}, {}

    def archive() -> None:
        try:
            outcome["archived"] = audit_archive(
                before=date(2025, 2, 1), directory=tmp_path, drop=True, by="test", lock_timeout="60s"
            )
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc
        finally:
            connections.close_all()

    def late_insert() -> None:
        try:
            with _other_session() as writer:
                writer.execute(
                    f"INSERT INTO audit_auditevent ({_COLUMNS}) SELECT {_COLUMNS.replace('seq,', 'seq + 100,')} "  # noqa: S608
                    f'FROM "{JAN}" ORDER BY seq LIMIT 1'
                )
            insert["done"] = True
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            insert["error"] = exc

    def waiting(kind: str) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = %s", [kind])
            return cursor.fetchone()[0] > 0

    with _other_session() as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT 1 FROM audit_auditchainhead WHERE name = 'primary' FOR UPDATE")
        runner = threading.Thread(target=archive, daemon=True)
        runner.start()
        wait_for(lambda: waiting("transactionid"), 60, "the drop waiting for the primary head")
        inserter = threading.Thread(target=late_insert, daemon=True)
        inserter.start()
        wait_for(lambda: insert or waiting("relation"), 60, "the late INSERT done or waiting")
        holder.execute("COMMIT")
        runner.join(120)
        inserter.join(120)
    assert "error" not in insert, insert
    assert "error" not in outcome, outcome
    (result,) = outcome["archived"]
    if result.refused is not None:  # the INSERT went first: the month changed since its export, left as it was
        assert "records changed since it was exported" in result.refused
        assert _exists(JAN) and not AuditArchive.objects.exists()
    else:  # the INSERT waited for the drop: its record went to the default partition
        assert not _exists(JAN) and AuditArchive.objects.count() == 1


def test_a_run_that_waited_its_turn_lists_the_months_left(january, tmp_path):
    """The months are listed once the lock is held: a run that waited while another dropped January finds nothing
    left to archive (it used to export the month it had listed first: `relation ... does not exist`)."""
    outcome = {}

    def archive() -> None:
        try:
            out = StringIO()
            call_command("audit", "archive", "--before", "2025-02", "--to", str(tmp_path), "--drop", stdout=out)
            outcome["out"] = out.getvalue()
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc
        finally:
            connections.close_all()

    with _other_session() as other:
        other.execute("SELECT pg_advisory_lock(hashtext(%s))", [ARCHIVE_LOCK])  # the first run
        runner = threading.Thread(target=archive, daemon=True)
        runner.start()

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
    assert "No monthly partition before 2025-02 to archive." in outcome["out"]
