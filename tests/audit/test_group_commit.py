"""Group commit: concurrent requests share commits, each gets its own committed record, the chain holds."""

import contextlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import AuditEntry, audit_record, head_seal
from apps.audit.writer import GroupCommitWriter

pytestmark = pytest.mark.django_db(transaction=True)  # the writer commits on a connection of its own


def _entry(n: int) -> AuditEntry:
    return AuditEntry(actor_type="client", actor_id=1, actor_name="ward-app", action="read",
                      resource_type="Patient", resource_id=str(n), patient_id=n)  # fmt: skip


def _record(n: int) -> AuditEvent:
    try:
        return audit_record(_entry(n))
    finally:
        connections.close_all()


def test_concurrent_records_are_each_committed_once_in_one_valid_chain():
    with ThreadPoolExecutor(max_workers=12) as pool:
        events = list(pool.map(_record, range(200)))
    assert sorted(int(e.resource_id) for e in events) == list(range(200))
    assert len({(e.chain_id, e.seq) for e in events}) == 200
    assert AuditEvent.objects.exclude(resource_type="AuditChain").count() == 200
    report = audit_chain_verify()
    # The process's own chain, registered by one record in the primary chain.
    assert report.ok and report.chains == 2 and report.checked == 201


def test_the_writer_recovers_when_its_chain_head_moves():
    writer = GroupCommitWriter()
    first = writer.submit(_entry(1))
    # Moved on with the key (a batch whose commit was never acknowledged seals the head it moves): resumed. A head
    # moved without it is never sealed again (tests/audit/test_forged_head_not_resealed_d.py).
    head = AuditChainHead.objects.get(pk=first.chain_id)
    moved = {"seq": first.seq + 5, "last_hash": "f" * 64}
    AuditChainHead.objects.filter(pk=first.chain_id).update(**moved, seal=head_seal(head.name, **moved))
    second = writer.submit(_entry(2))
    assert second.chain_id == first.chain_id and second.seq == first.seq + 6


def test_a_head_restored_from_an_earlier_state_over_cut_records_is_witnessed_by_the_writer(caplog):
    """Cut a chain's last records and put its head back as it was before them (copied earlier, seal and all):
    every seal is genuine, so `audit verify` sees an intact chain. The process that wrote the cut records
    knows where its chain ended, and says so: an error in its log and a record in the primary chain."""
    from django.db import connection

    writer = GroupCommitWriter()
    try:
        first = writer.submit(_entry(1))
        earlier = AuditChainHead.objects.values("seq", "last_hash", "seal").get(pk=first.chain_id)
        writer.submit(_entry(2))
        writer.submit(_entry(3))
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
            cursor.execute("DELETE FROM audit_auditevent WHERE chain_id = %s AND seq > 1", [first.chain_id])
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
        AuditChainHead.objects.filter(pk=first.chain_id).update(**earlier)
        assert audit_chain_verify().ok  # what the seals alone cannot tell

        with caplog.at_level("ERROR", logger="apps.audit.services"):
            fourth = writer.submit(_entry(4))
        assert fourth.seq == 2
        assert "moved back from #3" in caplog.text and "records after #1 were cut" in caplog.text
        cut = AuditEvent.objects.get(resource_type="AuditChain", action="delete")
        assert (cut.resource_id, cut.outcome, cut.result_count) == (str(first.chain_id), "error", 2)
        # ... which `audit verify` reports until acknowledged (tests/audit/test_chain_break_reported_d.py)
        assert audit_chain_verify().reported_breaks == [(cut.pk, str(first.chain_id), 2)]
    finally:
        writer.close()


def test_a_failed_batch_fails_its_requests_and_the_next_batch_still_works(monkeypatch):
    from apps.audit import services

    writer = GroupCommitWriter()
    writer.submit(_entry(0))  # opens this writer's chain
    original = services.audit_append_owned

    def database_went_away(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "audit_append_owned", database_went_away)
    with pytest.raises(RuntimeError, match="database went away"):
        writer.submit(_entry(1))
    monkeypatch.setattr(services, "audit_append_owned", original)
    assert writer.submit(_entry(2)).resource_id == "2"
    assert audit_chain_verify().ok


def test_a_batch_stores_every_field_exactly_as_it_was_sealed():
    """The batch travels as JSON: names, addresses, empty fields and instants must come back the same."""
    from datetime import UTC, datetime, timedelta, timezone

    from apps.audit.services import audit_append_owned, audit_chain_open

    state = audit_chain_open(name="round-trip")
    entries = [
        AuditEntry(actor_type="user", actor_id=7, actor_name="Zoë O'Brien \"night\" \\ ward 北", action="search",
                   resource_type="Observation", patient_id=None, source_ip="::ffff:10.1.2.3", purpose_of_use="ETREAT",
                   request_id="r-1", query_digest="d" * 64, result_count=0, served_from_cache=True,
                   recorded_at=datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))),
        AuditEntry(actor_type="client", actor_id=None, actor_name="", action="read", resource_type="Patient",
                   resource_id="", source_ip=None, recorded_at=datetime(2026, 1, 1, tzinfo=UTC)),
        AuditEntry(actor_type="client", actor_id=3, actor_name="a", action="read", resource_type="Patient",
                   resource_id="9", patient_id=9, source_ip="2001:db8::1"),
    ]  # fmt: skip
    written = audit_append_owned(state=state, entries=entries)
    stored = {event.pk: event for event in AuditEvent.objects.filter(pk__in=[event.pk for event in written])}
    fields = [field.attname for field in AuditEvent._meta.concrete_fields]
    for event in written:
        assert {name: getattr(stored[event.pk], name) for name in fields} == {n: getattr(event, n) for n in fields}
    assert [event.seq for event in written] == [1, 2, 3]
    assert stored[written[0].pk].recorded_at == datetime(2026, 3, 28, 23, 30, 0, 123456, tzinfo=UTC)
    assert audit_chain_verify().ok


def test_the_writer_records_ipv6_peers_postgresql_prints_its_own_way():
    """An IPv4-compatible address comes back from PostgreSQL dotted ("::1.2.3.4"), and a link-local peer's
    zone ("%eth0") is refused by the inet type: neither may fail the read nor read as an edited record."""
    from dataclasses import replace

    writer = GroupCommitWriter()
    for address in ("::1.2.3.4", "fe80::1%eth0"):
        writer.submit(replace(_entry(1), source_ip=address))
    assert audit_chain_verify().ok


def _end_the_writers_session(writer: GroupCommitWriter) -> int:
    """Terminate the writer's idle session from another one, as a restart, idle_session_timeout or a pooler would;
    returns once its backend has exited and the server's goodbye (FATAL, then the close) has reached the socket."""
    import select

    from django.db import connection

    own_pid = writer._database.info.backend_pid
    with connection.cursor() as cursor:
        assert own_pid != connection.connection.info.backend_pid
        cursor.execute("SELECT pg_terminate_backend(%s, 120000)", [own_pid])  # waits (<= 120 s) for it to exit
        assert cursor.fetchone() == (True,)
    readable = select.poll()
    readable.register(writer._database.pgconn.socket, select.POLLIN)
    assert readable.poll(120_000)
    return own_pid


def test_the_writer_reconnects_before_a_batch_when_the_server_ended_its_idle_session():
    """A session the server ended while the writer was idle (a restart, idle_session_timeout, another test's
    pg_terminate_backend) is found before the next batch is sent: that batch goes on a new connection and its
    requests get their records, not a 503."""
    writer = GroupCommitWriter()
    try:
        writer.submit(_entry(1))
        own_pid = _end_the_writers_session(writer)
        second = writer.submit(_entry(2))
        assert second.resource_id == "2"
        assert writer._database.info.backend_pid != own_pid
        assert writer.submit(_entry(3)).seq == second.seq + 1
        stored = set(AuditEvent.objects.filter(chain_id=second.chain_id).values_list("resource_id", flat=True))
        assert stored == {"1", "2", "3"}
        assert audit_chain_verify().ok
    finally:
        writer.close()


def test_a_phi_read_after_the_server_ended_the_writers_idle_session_is_served_and_audited(api, issue_token):
    """The CI flake of tests/reliability/test_d_database_restore.py: an earlier test terminated every session of
    the database, the process's writer's idle one included, and the next PHI read was answered 503."""
    from datetime import date

    from apps.audit.writer import writer
    from apps.clinical.services import patient_create

    patient = patient_create(mrn="MRN-000778", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    assert api.get(f"/api/v1/patients/{patient.pk}/").status_code == 200  # the writer's connection is open now
    _end_the_writers_session(writer)
    response = api.get(f"/api/v1/patients/{patient.pk}/")
    assert response.status_code == 200, (response.status_code, response.headers.get("Retry-After"), response.content)
    assert AuditEvent.objects.filter(resource_type="Patient", patient_id=patient.pk, outcome="success").count() == 2
    assert audit_chain_verify().ok


def test_unsolicited_messages_on_the_idle_connection_keep_it_and_are_not_lost():
    """What a live server may send an idle session (here a notification; a NOTICE or a ParameterStatus travels
    the same way) makes its socket readable too: the writer keeps the connection, and the message is still
    delivered."""
    from django.db import connection

    writer = GroupCommitWriter()
    try:
        writer.submit(_entry(1))
        database = writer._database
        own_pid = database.info.backend_pid
        received = []
        database.add_notify_handler(received.append)
        database.execute("LISTEN audit_writer_test")
        with connection.cursor() as cursor:
            cursor.execute("NOTIFY audit_writer_test, 'hello'")
        import select

        readable = select.poll()
        readable.register(database.pgconn.socket, select.POLLIN)
        assert readable.poll(120_000)
        writer.submit(_entry(2))
        writer.submit(_entry(3))
        assert writer._database is database and database.info.backend_pid == own_pid
        assert [(n.channel, n.payload) for n in received] == [("audit_writer_test", "hello")]
        assert audit_chain_verify().ok
    finally:
        writer.close()


def test_a_connection_lost_while_its_batch_is_in_flight_fails_that_batch_and_the_next_reconnects():
    """What no check before sending can see: the session ends while the batch waits for its answer (here on the
    chain head's row, which the test holds locked). That batch fails with Django's OperationalError (the API's
    503; it is not sent again, it may have committed), and the next batch reconnects; nothing is half-written and
    the chain still verifies."""
    import time

    import psycopg
    from django.db import OperationalError, connection

    writer = GroupCommitWriter()
    holder = None
    outcome = {}
    try:
        first = writer.submit(_entry(1))
        own_pid = writer._database.info.backend_pid
        holder = psycopg.connect(**connection.get_connection_params())
        holder.execute("SELECT 1 FROM audit_auditchainhead WHERE id = %s FOR UPDATE", [first.chain_id])

        def second():
            try:
                outcome["second"] = writer.submit(_entry(2), timeout=120)
            except Exception as exc:  # noqa: BLE001 - the test looks at what the request got
                outcome["second"] = exc

        thread = _daemon(second)
        deadline = time.monotonic() + 120
        with connection.cursor() as cursor:
            while time.monotonic() < deadline:  # the batch is sent, and waits on the head's row lock
                cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [own_pid])
                if cursor.fetchone() == ("Lock",):
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the writer's batch never waited on the head's row lock")
            cursor.execute("SELECT pg_terminate_backend(%s, 120000)", [own_pid])
        thread.join(120)
        assert not thread.is_alive()
        assert isinstance(outcome["second"], OperationalError), outcome
        holder.rollback()
        third = writer.submit(_entry(3))
        assert writer._database.info.backend_pid != own_pid
        assert third.resource_id == "3"
        stored = set(AuditEvent.objects.filter(chain_id=third.chain_id).values_list("resource_id", flat=True))
        assert stored == {"1", "3"}
        assert audit_chain_verify().ok
    finally:
        if holder is not None:
            holder.close()
        writer.close()


def test_the_writers_connection_gives_up_on_a_database_that_vanished_without_a_reset():
    """A peer gone without a reset (failover, dropped route) cannot be staged here without root on the network;
    what keeps the leader from waiting the kernel's two hours on it is libpq's socket limits, so those are checked."""
    writer = GroupCommitWriter()
    try:
        writer.submit(_entry(1))
        parameters = writer._database.info.get_parameters()
        assert {name: parameters.get(name) for name in ("connect_timeout", "keepalives", "tcp_user_timeout")} == {
            "connect_timeout": "5", "keepalives": "1", "tcp_user_timeout": "15000"
        }  # fmt: skip
        assert writer._database.execute("SELECT 1").fetchone() == (1,)
    finally:
        writer.close()


class _CountingWriter(GroupCommitWriter):
    """Remembers the size of every batch it writes."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.batches: list[int] = []

    def _write(self, entries):
        self.batches.append(len(entries))
        return super()._write(entries)


def _in_thread(target):
    import threading

    def run():
        try:
            target()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_leader_waits_for_the_records_of_reads_still_running_and_commits_them_together():
    import threading

    writer = _CountingWriter(gather_seconds=30)
    writer.submit(_entry(0))  # opens the chain: its own batch
    slow_read_started, leader_submitting = threading.Event(), threading.Event()
    events = {}

    def slow_read():
        with writer.expecting():
            slow_read_started.set()
            leader_submitting.wait(10)
            events["slow"] = writer.submit(_entry(2))

    def fast_read():
        with writer.expecting():
            slow_read_started.wait(10)
            leader_submitting.set()
            events["fast"] = writer.submit(_entry(1))  # leads, and waits for the slow read's record

    try:
        threads = [_in_thread(slow_read), _in_thread(fast_read)]
        for thread in threads:
            thread.join(20)
        assert writer.batches == [1, 2]
        assert {events["fast"].seq, events["slow"].seq} == {2, 3}
        assert audit_chain_verify().ok
    finally:
        writer.close()


def test_a_record_the_database_refuses_fails_only_its_own_request():
    """A malformed record (here a patient id beyond bigint) must not cost the requests that shared its
    batch their records: the batch is written again one record at a time."""
    import threading

    from django.db import DataError

    writer = _CountingWriter(gather_seconds=30)
    writer.submit(_entry(0))  # opens the chain: its own batch
    all_running = threading.Barrier(3)
    outcomes = {}

    def read(n: int):
        with writer.expecting():
            all_running.wait(10)
            try:
                outcomes[n] = writer.submit(_entry(n))
            except Exception as exc:  # noqa: BLE001 - the test looks at what each request got
                outcomes[n] = exc

    try:
        threads = [_in_thread(lambda n=n: read(n)) for n in (1, 10**20, 3)]
        for thread in threads:
            thread.join(20)
        assert writer.batches[:2] == [1, 3]  # one batch of the three, then each alone
        assert isinstance(outcomes[10**20], DataError)
        assert {outcomes[1].resource_id, outcomes[3].resource_id} == {"1", "3"}
        assert sorted(AuditEvent.objects.exclude(resource_type="AuditChain").values_list("patient_id", flat=True)) == [
            0,
            1,
            3,
        ]
        assert writer.submit(_entry(4)).seq == max(outcomes[1].seq, outcomes[3].seq) + 1
        assert audit_chain_verify().ok
    finally:
        writer.close()


def test_a_read_that_ends_without_a_record_releases_the_waiting_leader():
    """A read that fails before its audit (a 404, a bad parameter) must not hold a batch for the whole
    gather time: the leader goes as soon as no read of its process is still expected."""
    import threading
    import time

    writer = _CountingWriter(gather_seconds=30)
    writer.submit(_entry(0))
    failing_started, leader_waiting = threading.Event(), threading.Event()
    done = {}

    def failing_read():
        with contextlib.suppress(LookupError), writer.expecting():
            failing_started.set()
            leader_waiting.wait(10)
            time.sleep(0.2)  # the leader is inside its wait by now
            raise LookupError("no such patient")

    def leading_read():
        with writer.expecting():
            failing_started.wait(10)
            leader_waiting.set()
            started = time.monotonic()
            done["event"] = writer.submit(_entry(1))
            done["waited"] = time.monotonic() - started

    try:
        threads = [_in_thread(failing_read), _in_thread(leading_read)]
        for thread in threads:
            thread.join(20)
        assert done["event"].resource_id == "1"
        assert done["waited"] < 10  # released by the failing read, not by the 30 s bound
        assert writer.batches == [1, 1]
        assert writer._expected == 0
    finally:
        writer.close()


def test_a_leader_alone_does_not_wait():
    import time

    writer = _CountingWriter(gather_seconds=30)
    try:
        started = time.monotonic()
        with writer.expecting():
            writer.submit(_entry(1))
        writer.submit(_entry(2))  # nothing announced at all
        assert time.monotonic() - started < 10  # not the 30 s bound
        assert writer.batches == [1, 1] and writer._expected == 0
    finally:
        writer.close()


def test_api_reads_leave_nothing_expected_whatever_their_outcome(api, issue_token):
    """Every read announces its record; reads that end in a 200, 404 or 400 all leave the count at zero
    (a leaked announcement would make every later leader wait its full gather time)."""
    from datetime import date

    from apps.audit.writer import writer
    from apps.clinical.services import patient_create

    patient = patient_create(mrn="MRN-000777", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read')}")
    assert api.get(f"/api/v1/patients/{patient.pk}/").status_code == 200
    assert api.get(f"/api/v1/patients/{patient.pk + 1000}/").status_code == 404
    assert api.get(f"/api/v1/patients/{patient.pk}/?colour=blue").status_code == 400
    assert writer._expected == 0
    assert AuditEvent.objects.filter(resource_type="Patient", patient_id=patient.pk, outcome="success").count() == 1


@pytest.mark.parametrize(
    "unsealable",
    [
        {"patient_ids": ["not-a-number"]},  # its HMAC cannot be computed
        {"result_count": object()},  # the JSON batch cannot carry it
    ],
    ids=["seal", "send"],
)
def test_a_record_that_cannot_be_sealed_fails_only_its_own_request(unsealable):
    """A record whose seal (or the batch's JSON) cannot take one of its fields fails before anything is sent:
    only its own request may fail, the others of its batch are written one at a time as for a refused row."""
    import threading
    from dataclasses import replace

    writer = _CountingWriter(gather_seconds=30)
    writer.submit(_entry(0))  # opens the chain: its own batch
    all_running = threading.Barrier(3)
    outcomes = {}

    def read(n: int):
        entry = replace(_entry(n), **unsealable) if n == 2 else _entry(n)
        with writer.expecting():
            all_running.wait(10)
            try:
                outcomes[n] = writer.submit(entry)
            except Exception as exc:  # noqa: BLE001 - the test looks at what each request got
                outcomes[n] = exc

    try:
        threads = [_in_thread(lambda n=n: read(n)) for n in (1, 2, 3)]
        for thread in threads:
            thread.join(20)
        assert not any(thread.is_alive() for thread in threads)
        assert writer.batches[:2] == [1, 3]  # one batch of the three, then each alone
        assert isinstance(outcomes[2], ValueError)  # UnsealableEntry: the API answers it with a 503
        assert {outcomes[1].resource_id, outcomes[3].resource_id} == {"1", "3"}
        stored = AuditEvent.objects.exclude(resource_type="AuditChain").values_list("patient_id", flat=True)
        assert sorted(stored) == [0, 1, 3]
        assert writer.submit(_entry(4)).seq == max(outcomes[1].seq, outcomes[3].seq) + 1
        assert audit_chain_verify().ok
    finally:
        writer.close()


def _daemon(target):
    """A thread the test may leave behind if the code under test hangs it (the code before the fix did)."""
    import threading

    def run():
        try:
            target()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_leader_ended_by_an_interrupt_answers_its_batch_and_passes_the_lead_on():
    """A KeyboardInterrupt (any BaseException) raised in the leader's thread during its commit: the follower in
    its batch gets an error instead of waiting forever, the request queued meanwhile is promoted and committed,
    and the writer goes on. The interrupt is raised from the leader's write, where a real one would land."""
    import threading
    import time

    class InterruptedWriter(_CountingWriter):
        interrupt = False

        def _write(self, entries):
            if self.interrupt:
                self.interrupt = False
                writing.set()
                queued.wait(20)
                raise KeyboardInterrupt
            return super()._write(entries)

    writing, queued = threading.Event(), threading.Event()
    writer = InterruptedWriter(gather_seconds=30)
    writer.submit(_entry(0))  # opens the chain: its own batch
    writer.interrupt = True
    both_running = threading.Barrier(2)
    outcomes = {}

    def read(n: int):
        with writer.expecting():  # so the one that leads waits for the other: one batch of the two
            both_running.wait(20)
            try:
                outcomes[n] = writer.submit(_entry(n), timeout=120)
            except BaseException as exc:  # noqa: BLE001 - the test looks at what each request got
                outcomes[n] = exc

    def late():
        try:
            outcomes[3] = writer.submit(_entry(3), timeout=120)
        except BaseException as exc:  # noqa: BLE001
            outcomes[3] = exc

    threads = [_daemon(lambda n=n: read(n)) for n in (1, 2)]
    try:
        assert writing.wait(20)
        threads.append(_daemon(late))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the late request is queued behind the interrupted batch
            with writer._lock:
                if len(writer._queue) == 1:
                    break
            time.sleep(0.01)
        queued.set()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads), f"requests left waiting: {outcomes}"
        interrupted = [n for n in (1, 2) if isinstance(outcomes[n], KeyboardInterrupt)]
        assert len(interrupted) == 1  # the leader's own thread
        follower = 3 - interrupted[0]
        assert isinstance(outcomes[follower], Exception)  # an error its request answers with a 503
        assert outcomes[3].resource_id == "3"  # promoted, and committed
        assert writer.batches[-1] == 1
        assert writer.submit(_entry(4)).seq == outcomes[3].seq + 1
        assert audit_chain_verify().ok
    finally:
        queued.set()
        writer.close()
