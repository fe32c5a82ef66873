"""Review f (optimizer step ownership): 1. the heartbeat thread kept the connection a dropped session left broken,
so every later beat failed: a live step went silent for good (a redelivery took it over, the stuck checker failed
it). 2. The stuck checker read an older release's live attempt as lost: its claim writes status, attempts and
started_at only, so the row keeps the dead attempt's stale heartbeat_at.
Real PostgreSQL; the session kill is pg_terminate_backend on this test's own database (a restart, failover or
idle-session kill, as the workers meet it). The step's measure is replaced by one that blocks on an event: the
stand-in for minutes of measuring without a progress report."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from apps.optimizer import services
from apps.optimizer.models import OptimizationRun, OptimizationStep
from apps.optimizer.steps import STEPS
from apps.optimizer.types import StepResult
from tests.helpers import in_thread, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 120  # seconds any wait on another thread may take
BEAT = 2  # OPTIMIZER_STEP_HEARTBEAT_SECONDS here: stale after 6 s, lost after 20 s


def _row(step_id: int) -> dict:
    return OptimizationStep.objects.filter(pk=step_id).values("heartbeat_at", "started_at", "status", "attempts").get()


def _heartbeat_sessions() -> list[int]:
    """The heartbeat thread's session: its last statement the beat's UPDATE (a progress report's sets progress)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND query LIKE 'UPDATE %%SET "heartbeat_at" = STATEMENT_TIMESTAMP() WHERE%%'"""
        )
        return [pid for (pid,) in cursor.fetchall()]


def _kill_all_but_the_owner() -> list[int]:
    """Every client session of this database but this test's and the measuring owner's (idle since its progress
    report): the heartbeat's and the pool's idle ones, as a restart leaves them. The owner's own session is spared:
    its loss fails its step's end, a matter apart."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_type = 'client backend' AND query NOT LIKE '%%"progress"%%'"""
        )
        pids = [pid for (pid,) in cursor.fetchall()]
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    return pids


@pytest.fixture
def blocked_measure(monkeypatch) -> threading.Event:
    release = threading.Event()

    def measure(goals, progress):
        progress(0.1, "measuring")
        assert release.wait(WAIT), "never released"
        return StepResult(findings={"measured": 1}, drafts=[])

    monkeypatch.setattr(STEPS["caching"], "measure", measure)
    monkeypatch.setattr(STEPS["caching"], "verdicts", lambda findings, goals: [])
    return release


def test_the_heartbeat_beats_again_after_its_sessions_are_killed(settings, blocked_measure, caplog):
    settings.OPTIMIZER_STEP_HEARTBEAT_SECONDS = BEAT
    caplog.set_level(logging.WARNING, logger="apps.optimizer.services")
    run = services.optimization_run_create(target="caching")
    step_id = run.steps.get().pk
    owner = in_thread(lambda: services.optimization_step_execute(step_id=step_id))
    try:
        wait_for(lambda: _row(step_id)["status"] == "running" and _heartbeat_sessions(), WAIT, "a beat by the thread")
        killed = _kill_all_but_the_owner()
        assert set(_heartbeat_sessions()) <= set(killed)
        before = _row(step_id)["heartbeat_at"]

        # Was: every later beat failed on the broken connection ("the connection is closed"); never advanced.
        wait_for(lambda: _row(step_id)["heartbeat_at"] > before, WAIT, "a beat after the sessions were killed")
        assert services.optimization_runs_fail_stuck() == 0  # the live step is not read as lost
        failed = [r for r in caplog.records if "heartbeat not written" in r.getMessage()]
        assert failed and all(r.exc_info is None for r in failed)  # one line each, no traceback
    finally:
        blocked_measure.set()
        owner.join(WAIT)
    assert not owner.is_alive()
    row = _row(step_id)
    assert row["status"] == OptimizationStep.Status.SUCCEEDED and row["attempts"] == 1
    assert OptimizationRun.objects.get(pk=run.pk).steps.get().findings == {"measured": 1}


def test_a_claim_writes_started_at_and_its_first_beat_by_one_database_clock():
    run = services.optimization_run_create(target="caching")
    step = run.steps.get()
    with transaction.atomic():
        services._step_claim(OptimizationStep.objects.select_related("run").get(pk=step.pk))
    row = _row(step.pk)
    assert row["started_at"] == row["heartbeat_at"]  # was the worker's clock against the database's


def _old_release_claim(step: OptimizationStep, *, last_beat_ago: timedelta, clock_behind: timedelta) -> None:
    """A new-release attempt beat last `last_beat_ago` and was lost; its redelivery reached an older release's
    worker (a rolling upgrade), whose claim (6df197c^) writes status, attempts and started_at by its own clock,
    `clock_behind` the database's, a moment after that last beat."""
    OptimizationStep.objects.filter(pk=step.pk).update(
        status="running",
        attempts=1,
        attempt_token=uuid.uuid4(),
        started_at=Now() - last_beat_ago - timedelta(minutes=1),
        heartbeat_at=Now() - last_beat_ago,
    )
    claimed = timezone.now() - last_beat_ago + timedelta(seconds=0.5) - clock_behind
    OptimizationStep.objects.filter(pk=step.pk).update(status="running", attempts=2, started_at=claimed)


@pytest.mark.parametrize("clock_behind", [timedelta(0), timedelta(seconds=5)], ids=["same clock", "5 s behind"])
def test_the_checker_leaves_an_older_release_attempt_to_the_deadline(settings, clock_behind):
    settings.OPTIMIZER_STEP_HEARTBEAT_SECONDS = 15
    run = services.optimization_run_create(target="caching")
    step = run.steps.get()
    _old_release_claim(step, last_beat_ago=timedelta(minutes=3), clock_behind=clock_behind)

    assert services.optimization_runs_fail_stuck() == 0, OptimizationStep.objects.get(pk=step.pk).error  # was 1
    assert OptimizationStep.objects.get(pk=step.pk).status == OptimizationStep.Status.RUNNING
    # The deadline still fails it.
    later = timezone.now() + timedelta(seconds=settings.OPTIMIZER_RUN_DEADLINE_SECONDS + 60)
    assert services.optimization_runs_fail_stuck(now=later) == 1


def test_the_checker_fails_a_claimed_attempt_once_its_heartbeat_stopped(settings):
    """The other side of the rule: an attempt of this release that beat, then fell silent 10 beats, is failed;
    one silent from its very claim (no beat past it) waits for the deadline."""
    settings.OPTIMIZER_STEP_HEARTBEAT_SECONDS = 15
    lost = services.optimization_run_create(target="caching")
    unborn = services.optimization_run_create(target="caching")
    for run in (lost, unborn):
        with transaction.atomic():
            services._step_claim(OptimizationStep.objects.select_related("run").get(pk=run.steps.get().pk))
    hour = timedelta(hours=1)
    lost.steps.update(started_at=F("started_at") - hour, heartbeat_at=F("heartbeat_at") - hour + timedelta(seconds=30))
    unborn.steps.update(started_at=F("started_at") - hour, heartbeat_at=F("heartbeat_at") - hour)

    assert services.optimization_runs_fail_stuck() == 1
    assert "worker was lost" in lost.steps.get().error
    assert OptimizationRun.objects.get(pk=lost.pk).status == OptimizationRun.Status.FAILED
    assert unborn.steps.get().status == OptimizationStep.Status.RUNNING
