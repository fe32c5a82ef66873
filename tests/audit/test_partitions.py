"""The trail's PostgreSQL tables refuse TRUNCATE (the table, every partition, the chain heads); what a
TRUNCATE, DROP or DETACH by someone who switched the guard off leaves behind, `audit verify` reports."""

import logging
from datetime import UTC, date, datetime
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from apps.audit import services
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_chain_verify, audit_partitions_problem
from apps.audit.services import (
    PARTITION_FAILURE_CACHE_KEY,
    AuditEntry,
    PartitionsLockBusy,
    audit_chain_open,
    audit_partitions_ensure,
    audit_partitions_ensure_attempt,
    audit_record_batch,
)

pytestmark = pytest.mark.django_db


def _entry(at: datetime, **fields) -> AuditEntry:
    return AuditEntry(actor_type="system", actor_id=None, actor_name="test", action="read", resource_type="Patient",
                      recorded_at=at, **fields)  # fmt: skip


def _months_after_the_last_partition(count: int) -> list[date]:
    """Months right after those the migration created, so the test's partitions leave no gap."""
    day = timezone.now().date().replace(day=1)
    months = []
    for index in range(4, 4 + count):
        year, month = divmod(day.month - 1 + index, 12)
        months.append(date(day.year + year, month + 1, 1))
    return months


def _sql(*statements: str) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture
def three_months() -> list[str]:
    """Three new monthly partitions, two records on the primary chain in each (seq 1-2, 3-4, 5-6)."""
    months = _months_after_the_last_partition(3)
    created = audit_partitions_ensure(months_ahead=2, today=months[0])
    assert created == [f"audit_auditevent_y{m.year}m{m.month:02d}" for m in months]
    for month in months:
        audit_record_batch([_entry(datetime(month.year, month.month, 10, tzinfo=UTC)) for _ in range(2)])
    assert audit_chain_verify().ok
    return created


@pytest.mark.parametrize("table", ["audit_auditevent", "audit_auditevent_default", "new", "audit_auditchainhead"])
def test_truncate_is_refused_on_the_table_every_partition_and_the_chain_heads(table, three_months):
    table = three_months[1] if table == "new" else table
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        _sql(f'TRUNCATE "{table}" CASCADE')
    assert AuditEvent.objects.count() == 6 and audit_chain_verify().ok


def test_a_chain_head_cannot_be_deleted():
    audit_chain_open(name="host:1:cccc")
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        _sql("DELETE FROM audit_auditchainhead WHERE name = 'host:1:cccc'")


def test_verify_reports_the_records_of_a_truncated_partition(three_months):
    truncated = three_months[1]
    _sql(f'ALTER TABLE "{truncated}" DISABLE TRIGGER audit_refuse_truncate', f'TRUNCATE "{truncated}"')
    report = audit_chain_verify()
    assert report.missing == [("primary", 3, 4)] and report.unguarded_tables == [truncated]
    _sql(f'ALTER TABLE "{truncated}" ENABLE TRIGGER audit_refuse_truncate')  # covering the tracks
    out = StringIO()
    with pytest.raises(CommandError, match="tampered"):
        call_command("audit", "verify", stdout=out)
    assert "DELETED  record(s) #3-#4 of chain primary" in out.getvalue()


def test_verify_reports_a_chain_whose_records_all_vanished(three_months):
    audit_chain_open(name="host:9:dddd")
    last_month = _months_after_the_last_partition(3)[2]
    at = datetime(last_month.year, last_month.month, 20, tzinfo=UTC)
    audit_record_batch([_entry(at), _entry(at)], chain="host:9:dddd")
    _sql(f'ALTER TABLE "{three_months[2]}" DISABLE TRIGGER audit_refuse_truncate', f'TRUNCATE "{three_months[2]}"',
         f'ALTER TABLE "{three_months[2]}" ENABLE TRIGGER audit_refuse_truncate')  # fmt: skip
    report = audit_chain_verify()
    assert ("host:9:dddd", 1, 2) in report.missing and ("primary", 5, 6) in report.missing
    assert not report.ok


def test_verify_reports_a_detached_and_a_dropped_partition(three_months):
    first, middle, _ = three_months
    _sql(f'ALTER TABLE audit_auditevent DETACH PARTITION "{first}"', f'DROP TABLE "{middle}"')
    report = audit_chain_verify()
    assert report.detached_partitions == [first]
    assert report.month_gaps == [first, middle]
    assert report.missing == [("primary", 1, 4)]
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("audit", "verify", stdout=out)
    assert f"DETACHED partition {first}" in out.getvalue() and f"NOTE     no partition {middle}" in out.getvalue()


def test_verify_reports_a_dropped_default_partition():
    _sql("DROP TABLE audit_auditevent_default")
    assert audit_chain_verify().missing_partitions == ["audit_auditevent_default"]


@pytest.mark.django_db(transaction=True)
def test_flush_still_empties_the_trail():
    """Tests flush between transactional tests, through the audit app's `flush`; nothing else may."""
    audit_record_batch([_entry(timezone.now())])
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditEvent.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('audit.allow_truncate', true)")
        assert cursor.fetchone()[0] in (None, "", "off")  # for the flush's transaction only


def test_partitions_are_cut_at_utc_midnight_whatever_the_sessions_time_zone():
    month = _months_after_the_last_partition(1)[0]
    _sql("SET LOCAL TIME ZONE 'Pacific/Auckland'")
    [name] = audit_partitions_ensure(months_ahead=0, today=month)
    _sql("SET LOCAL TIME ZONE 'UTC'")
    [event] = audit_record_batch([_entry(datetime(month.year, month.month, 1, 0, 30, tzinfo=UTC))])
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM audit_auditevent WHERE id = %s", [event.pk])
        assert cursor.fetchone()[0] == name


def test_a_month_with_rows_in_the_default_partition_is_skipped_and_later_months_created():
    months = _months_after_the_last_partition(3)
    audit_record_batch([_entry(datetime(months[0].year, months[0].month, 3, tzinfo=UTC))])  # no partition yet
    created = audit_partitions_ensure(months_ahead=2, today=months[0])
    assert created == [f"audit_auditevent_y{m.year}m{m.month:02d}" for m in months[1:]]
    assert audit_partitions_ensure(months_ahead=2, today=months[0]) == []
    assert audit_chain_verify().ok


def test_creating_a_partition_gives_up_rather_than_queue_every_audit_write_behind_a_long_reader():
    """CREATE TABLE ... PARTITION OF waits for an ACCESS EXCLUSIVE lock behind a reader of the trail (`audit
    verify`, pg_dump), and every audit INSERT queues behind the waiting DDL: PHI reads would hang for as long as
    the reader runs. The creation gives up instead (the daily task makes the month on its next run)."""
    import psycopg
    from django.db import OperationalError

    month = _months_after_the_last_partition(1)[0]
    _sql("SET LOCAL statement_timeout = '30s'")  # bounds the wait where the creation does not give up
    with psycopg.connect(**connection.get_connection_params()) as reader:
        reader.execute("SELECT count(*) FROM audit_auditevent")  # its transaction holds the trail open
        with pytest.raises(OperationalError) as refused:
            audit_partitions_ensure(months_ahead=0, today=month)
        assert isinstance(refused.value.__cause__, psycopg.errors.LockNotAvailable)
        reader.rollback()
    assert audit_partitions_ensure(months_ahead=0, today=month) == [f"audit_auditevent_y{month.year}m{month.month:02d}"]
    with connection.cursor() as cursor:  # the caller's own lock_timeout is back for the rest of its transaction
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"


def test_verify_reports_the_append_only_trigger_switched_off_and_left_off(three_months):
    """Edits are caught by their seals; the trigger that refuses them being off is reported too, not left for the
    next attacker. A trigger set to fire only for replication (ENABLE REPLICA) never fires in a normal session."""
    _sql(f'ALTER TABLE "{three_months[0]}" DISABLE TRIGGER audit_event_append_only',
         f'ALTER TABLE "{three_months[1]}" ENABLE REPLICA TRIGGER audit_event_append_only',
         "ALTER TABLE audit_auditchainhead DISABLE TRIGGER audit_chain_head_kept")  # fmt: skip
    report = audit_chain_verify()
    assert report.writable_tables == sorted(["audit_auditchainhead", three_months[0], three_months[1]])
    assert not report.ok and not report.missing and not report.edited
    out = StringIO()
    with pytest.raises(CommandError, match="tampered"):
        call_command("audit", "verify", stdout=out)
    assert f"WRITABLE table {three_months[0]}: its append-only trigger is missing or disabled" in out.getvalue()


def test_verify_reports_a_truncate_guard_set_to_fire_only_for_replication(three_months):
    _sql(f'ALTER TABLE "{three_months[1]}" ENABLE REPLICA TRIGGER audit_refuse_truncate')
    assert audit_chain_verify().unguarded_tables == [three_months[1]]


@pytest.mark.django_db(transaction=True)
def test_the_trail_is_not_migrated_backwards_once_it_holds_records():
    """`migrate audit zero` would drop the event table, the whole trail; every backward step reverses 0006 first."""
    audit_record_batch([_entry(timezone.now())])
    try:
        with pytest.raises(RuntimeError, match="audit trail holds records"):
            call_command("migrate", "audit", "0005", verbosity=0)
        assert AuditEvent.objects.count() == 1
    finally:  # those reversed before the refusal (0012-0009: each commits on its own) are applied again
        call_command("migrate", "audit", verbosity=0)
    assert audit_chain_verify().ok


def test_verify_notes_partitions_about_to_run_out():
    """The beat task makes months ahead; when it has stopped, verify (what an operator runs) says so before
    records pile up in the default partition, whose months can then never be partitioned."""
    assert audit_chain_verify().partitions_run_out is None  # the migration made three months ahead
    today = timezone.now().date()
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname ~ '^audit_auditevent_y[0-9]{4}m[0-9]{2}$'")
        ahead = [name for (name,) in cursor.fetchall() if name > f"audit_auditevent_y{today.year}m{today.month:02d}"]
    _sql(*[f'DROP TABLE "{name}"' for name in ahead])  # empty months ahead, as if the task had not run since
    report = audit_chain_verify()
    assert report.partitions_run_out == f"audit_auditevent_y{today.year}m{today.month:02d}" and report.ok
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "is the beat task audit.ensure_partitions running?" in out.getvalue()


@pytest.fixture
def no_partition_failure():
    cache.delete(PARTITION_FAILURE_CACHE_KEY)
    yield
    cache.delete(PARTITION_FAILURE_CACHE_KEY)


def test_the_partition_task_waits_out_a_long_reader_of_the_trail_and_then_creates_the_month(no_partition_failure):
    """A nightly `audit verify` (one REPEATABLE READ snapshot) or pg_dump that overlaps the daily task held the
    lock CREATE TABLE ... PARTITION OF needs past its 2 s timeout, so the task failed every day and the partitions
    ran out. Its first attempt now says when to try again (what the task's retry waits); here the reader has
    ended by then, and the second attempt creates the month."""
    import psycopg

    month = _months_after_the_last_partition(1)[0]
    _sql("SET LOCAL statement_timeout = '30s'")  # bounds the wait where the creation does not give up
    with psycopg.connect(**connection.get_connection_params()) as reader:
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM audit_auditevent")  # holds ACCESS SHARE until its transaction ends
        with pytest.raises(PartitionsLockBusy) as busy:
            audit_partitions_ensure_attempt(months_ahead=0, today=month, attempt=1, lock_timeout="100ms")
        assert busy.value.retry_in == services.PARTITION_BACKOFF_SECONDS
        reader.rollback()
    created = audit_partitions_ensure_attempt(months_ahead=0, today=month, attempt=2, lock_timeout="100ms")
    assert created == [f"audit_auditevent_y{month.year}m{month.month:02d}"]
    assert audit_partitions_problem() is None


def test_the_partition_task_retries_with_backoff_then_its_failure_is_logged_as_an_error_and_noted_by_verify(
    no_partition_failure, monkeypatch, caplog
):
    """With the lock held through every attempt the task retries a bounded number of times, each wait twice the
    one before, then fails loudly: an error in the log, and a NOTE in `audit verify` (what operators run) until a
    later run succeeds. (Run eagerly, so its retries come at once.)"""
    import psycopg

    from apps.audit.tasks import ensure_partitions

    monkeypatch.setattr(services, "PARTITION_ATTEMPTS", 3)
    monkeypatch.setattr(services, "PARTITION_LOCK_TIMEOUT", "100ms")
    _sql("SET LOCAL statement_timeout = '30s'")
    with psycopg.connect(**connection.get_connection_params()) as reader:
        reader.execute("LOCK TABLE audit_auditevent IN ACCESS SHARE MODE")
        with caplog.at_level(logging.WARNING, logger="apps.audit.services"):
            result = ensure_partitions.apply(kwargs={"months_ahead": 4})  # the 4th month ahead is new
        reader.rollback()
    assert result.state == "FAILURE"
    ours = [record for record in caplog.records if record.name == "apps.audit.services"]
    retries = [record.getMessage() for record in ours if record.levelno == logging.WARNING]
    assert [message.rsplit(" ", 1)[-1] for message in retries] == ["60s", "120s"]  # two retries, backing off
    [error] = [record for record in ours if record.levelno == logging.ERROR]
    assert "not created after 3 attempt(s)" in error.getMessage()
    assert "3 attempt(s)" in audit_partitions_problem()
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "NOTE     the partition task audit.ensure_partitions gave up at" in out.getvalue()

    ensure_partitions.apply(kwargs={"months_ahead": 4})  # the next daily run succeeds (nothing in the way)
    assert audit_partitions_problem() is None
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "gave up" not in out.getvalue()


def test_audit_partitions_by_hand_names_the_reader_in_the_way_and_its_success_clears_the_tasks_failure(
    no_partition_failure,
):
    """An operator who sees verify's note runs `audit partitions`: behind a reader it was a traceback; now it
    says what is in the way, and once it succeeds verify's note is gone (not left until the next daily run)."""
    import psycopg

    _sql("SET LOCAL statement_timeout = '30s'")
    with psycopg.connect(**connection.get_connection_params()) as reader:
        reader.execute("LOCK TABLE audit_auditevent IN ACCESS SHARE MODE")
        with pytest.raises(CommandError, match="a long reader of it"):
            call_command("audit", "partitions", "--months-ahead", "4", stdout=StringIO())  # the 4th month is new
        reader.rollback()
    assert "1 attempt(s)" in audit_partitions_problem()
    out = StringIO()
    call_command("audit", "partitions", "--months-ahead", "4", stdout=out)
    assert out.getvalue().startswith("Created 1 partition(s)")
    assert audit_partitions_problem() is None
