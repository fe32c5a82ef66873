"""`audit verify` reads the chains in chunks, each a statement of its own: a walk over millions of records must not
hold the trail open (the partition task's CREATE TABLE ... PARTITION OF needs it to itself and gave up behind one
REPEATABLE READ transaction spanning the whole walk), and `--progress` says how far it has got."""

import threading
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, connections

from apps.audit import selectors
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import AuditEntry, audit_record_batch

pytestmark = pytest.mark.django_db(transaction=True)  # the walk and the lock taker are sessions of their own


def _records(count: int) -> None:
    entries = [
        AuditEntry(actor_type="client", actor_id=1, actor_name="ward-app", action="read", resource_type="Patient",
                   resource_id=str(n), patient_id=n)
        for n in range(count)
    ]  # fmt: skip
    audit_record_batch(entries)


def test_a_verify_half_way_through_its_walk_does_not_keep_the_partition_task_out(monkeypatch):
    """Paused in the middle of its walk (between chunks of 10 of 60 records), the verify holds no lock on the
    trail: the lock CREATE TABLE ... PARTITION OF needs is granted at once (asked with a generous 15 s limit;
    before, the walk's transaction held it off until the walk ended, past any limit)."""
    _records(60)
    paused, resume = threading.Event(), threading.Event()
    real_check, calls = selectors.record_sealed_by, []

    def pausing_check(values: dict, *args) -> tuple[str | None, bool]:
        calls.append(1)
        if len(calls) == 25:  # half-way: the third chunk
            paused.set()
            resume.wait(60)
        return real_check(values, *args)

    monkeypatch.setattr(selectors, "record_sealed_by", pausing_check)
    outcome = {}

    def walk() -> None:
        try:
            outcome["report"] = audit_chain_verify(chunk_size=10)
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc
        finally:
            connections.close_all()

    walker = threading.Thread(target=walk, daemon=True)
    walker.start()
    try:
        assert paused.wait(60), "the walk never reached its middle"
        with psycopg.connect(**connection.get_connection_params()) as other:
            other.execute("SET lock_timeout = '15s'")
            try:
                other.execute("LOCK TABLE audit_auditevent IN ACCESS EXCLUSIVE MODE")  # what partition creation takes
                granted = True
            except psycopg.errors.LockNotAvailable:
                granted = False
            other.rollback()
        assert granted, "a verify half-way through its walk held the trail's lock"
    finally:
        resume.set()
        walker.join(60)
    assert not walker.is_alive()
    report = outcome["report"]
    assert report.ok and report.checked == 60 and len(calls) == 60


def test_verify_in_small_chunks_still_finds_a_record_cut_at_a_chunk_edge():
    """The keyset between chunks must not skip or repeat: a record deleted right at a chunk's edge is reported."""
    _records(30)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        try:
            cursor.execute("DELETE FROM audit_auditevent WHERE seq = 11")
        finally:
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    report = audit_chain_verify(chunk_size=10)
    assert report.missing == [("primary", 11, 11)] and report.checked == 29 and not report.edited


def test_verify_progress_says_how_many_records_were_checked_of_how_many():
    _records(40)
    out, err = StringIO(), StringIO()
    call_command("audit", "verify", "--progress", stdout=out, stderr=err)
    assert "Audit trail intact: 40 record(s)" in out.getvalue()
    assert err.getvalue().splitlines()[-1].startswith("audit verify: 40 of 40 records (100%), ")
    assert err.getvalue().rstrip().endswith("records/s")
