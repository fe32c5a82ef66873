"""Two creates at once of one suite plan, or of one plan's nightly schedule (two admins, two requests):
the second found nothing, inserted too and failed on the unique name (an IntegrityError, a 500). Here the
first create is held open, uncommitted, until the second is seen waiting on a lock in PostgreSQL; then
the first commits, and the second must end with the first's row, not an error."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connection, connections, transaction
from django_celery_beat.models import PeriodicTask

from apps.benchmarks.models import BenchmarkPlan
from apps.benchmarks.services import nightly_benchmarks_ensure
from apps.benchmarks.suite import MedicalAIBenchmarkSuite
from apps.services.services import service_ensure
from tests.benchmarks.support import REQUESTS

pytestmark = pytest.mark.django_db(transaction=True)


def _waits_on_us(pid: int, timeout: float = 30.0) -> None:
    """Until backend `pid` waits on a lock this connection holds. pg_blocking_pids reads the lock manager as
    it is now; pg_stat_activity, read inside the held transaction, is PostgreSQL's snapshot of the first read
    in it: a second create that was still connecting then (a pooled connection held elsewhere, as after
    tests/core/test_h_schedule_visibility.py) was never seen waiting, and the race failed after 30 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid() = ANY(pg_blocking_pids(%s))", [pid])
            if cursor.fetchone()[0]:
                return
        time.sleep(0.1)
    raise AssertionError(f"the second create never waited on the first within {timeout} s")


def _race(first, second) -> object:
    """Run `first` in a transaction held open until `second` (in another thread) waits on its lock."""
    outcome: dict[str, object] = {}
    connected = threading.Event()

    def other() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["pid"] = cursor.fetchone()[0]
            connected.set()
            outcome["value"] = second()
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=other, daemon=True)
    try:
        with transaction.atomic():  # its end (commit, or rollback on a failure) lets the second go on
            first()
            thread.start()
            assert connected.wait(30), repr(outcome.get("error"))
            _waits_on_us(outcome["pid"])
    finally:
        if thread.ident is not None:
            thread.join(timeout=60)
    assert not thread.is_alive(), "the second create did not end"
    assert "error" not in outcome, repr(outcome.get("error"))
    return outcome["value"]


def test_two_suites_creating_one_plan_at_once_share_it():
    service = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]
    suite = MedicalAIBenchmarkSuite(service)
    plan = _race(lambda: suite._plan("load /card x10", "/card", users=10),
                 lambda: suite._plan("load /card x10", "/card", users=12))  # fmt: skip
    assert BenchmarkPlan.objects.count() == 1
    assert plan.pk == BenchmarkPlan.objects.get().pk and BenchmarkPlan.objects.get().users == 12  # the later one


def test_two_admins_scheduling_one_plan_at_once_make_one_schedule():
    service = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]
    plan = BenchmarkPlan.objects.create(name="ward load", service=service, requests=REQUESTS)
    plans = BenchmarkPlan.objects.filter(pk=plan.pk)
    outcome = _race(lambda: nightly_benchmarks_ensure(plans=plans), lambda: nightly_benchmarks_ensure(plans=plans))
    assert outcome.created == [] and outcome.existing == ["Nightly benchmark: ward load"]
    rows = [row for row in PeriodicTask.objects.filter(task="benchmarks.scheduled_run")
            if json.loads(row.kwargs).get("plan_id") == plan.pk]  # fmt: skip
    assert [row.name for row in rows] == ["Nightly benchmark: ward load"]
