"""The stuck-run checker (every 5 minutes) looked up each waiting run's target on its own: the run read again,
every service's base URL, their rows locked and the target's running run, a transaction each, for every run
pending REQUEUE_SECONDS behind a busy target, every round. The waiting runs and the running runs' targets are
now read in one query a round, however many runs wait. Real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.models import Service
from apps.services.services import service_create
from tests.benchmarks.support import REQUESTS, running

pytestmark = pytest.mark.django_db


def _waiting(service: Service, count: int) -> list[int]:
    """Runs pending past REQUEUE_SECONDS, not yet sent again (one a plan: a plan has one pending run at most)."""
    plans = [
        BenchmarkPlan.objects.create(name=f"waits {uuid.uuid4().hex[:8]}", service=service, requests=REQUESTS)
        for _ in range(count)
    ]
    runs = [services.benchmark_run_create(plan=plan).pk for plan in plans]
    created = timezone.now() - timedelta(seconds=services.REQUEUE_SECONDS + 60)
    BenchmarkRun.objects.filter(pk__in=runs).update(created_at=created)
    return runs


def _round_queries() -> int:
    with CaptureQueriesContext(connection) as queries:
        assert services.benchmark_runs_fail_stuck() == 0
    return len(queries)


def test_a_round_reads_the_waiting_runs_targets_in_one_query_however_many_wait():
    here = service_create(name="Triage", slug="triage", base_url="http://127.0.0.1:9")
    same_target = service_create(name="Triage B", slug="triage-b", base_url="http://127.0.0.1:9/b/")
    elsewhere = service_create(name="Imaging", slug="imaging", base_url="http://127.0.0.1:10")
    running(BenchmarkPlan.objects.create(name="loading", service=here, duration_seconds=60, requests=REQUESTS))
    running(BenchmarkPlan.objects.create(name="other", service=elsewhere, duration_seconds=60, requests=REQUESTS))

    waiting = _waiting(same_target, 1)
    one = _round_queries()
    waiting += _waiting(same_target, 4)
    five = _round_queries()

    assert five == one, f"{one} queries with one waiting run, {five} with five"  # old: 6 more a waiting run
    assert set(BenchmarkRun.objects.filter(pk__in=waiting).values_list("status", "requeued_at")) == {
        (BenchmarkRun.Status.PENDING, None)  # their target busy: none sent again
    }
