"""`bench run --wait` follows its run until it ends; a run deleted meanwhile (its plan deleted in admin) made it
crash with a DoesNotExist traceback. Now it says so, with an exit status of its own."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from apps.benchmarks.management.commands.bench import RUN_DELETED
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from tests.benchmarks.support import drain_benchmarks_queue, queued_plan

pytestmark = pytest.mark.django_db(transaction=True)


def test_waiting_on_a_run_deleted_meanwhile_says_so():
    plan = queued_plan("waited")
    deleted = threading.Event()

    def delete_when_sent() -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not BenchmarkRun.objects.filter(plan_id=plan.pk).exists():
                time.sleep(0.1)
            BenchmarkPlan.objects.filter(pk=plan.pk).delete()
            deleted.set()
        finally:
            connections.close_all()

    deleter = threading.Thread(target=delete_when_sent, daemon=True)
    deleter.start()
    try:
        with pytest.raises(CommandError) as failed:
            call_command("bench", "run", "waited", "--wait")
    finally:
        deleter.join(timeout=60)
    assert deleted.is_set()
    assert failed.value.returncode == RUN_DELETED
    assert "was deleted while waiting for it" in str(failed.value)
    drain_benchmarks_queue()
