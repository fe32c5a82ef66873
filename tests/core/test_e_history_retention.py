"""Finished run history is deleted daily past HISTORY_KEEP_DAYS (core.prune_history): benchmark runs, optimization
runs and resolved alerts were kept for ever. What is still running, open, or read as a plan's or service's latest
or a regression baseline is kept however old; a backlog goes in batches; a bad setting stops start-up."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun, Regression
from apps.benchmarks.services import BASELINE_RUNS
from apps.core import services
from apps.metrics.models import Alert, AlertNotification
from apps.optimizer.models import OptimizationRun, OptimizationStep, Recommendation
from apps.services.services import service_ensure
from controlplane.celery import app as celery_app
from tests.helpers import embedded_env, manage

SCHEDULE = "Prune finished run history"
TASK = "core.prune_history"
OLD, RECENT = timedelta(days=200), timedelta(days=10)


def _run_as_beat_sends_it() -> dict:
    """The task beat's schedule names, looked up by that name and run through Celery's task machinery here."""
    celery_app.loader.import_default_modules()
    return celery_app.tasks[TASK].apply().get()


def _plan(name: str, slug: str = "target") -> BenchmarkPlan:
    service, _ = service_ensure(slug=slug, name=slug.title(), base_url="http://127.0.0.1:9")
    # a mix that names a patient: nothing of it may reach the log
    requests = [{"name": "card", "method": "GET", "path": "/fhir/Patient/MRN-4711", "weight": 1}]
    return BenchmarkPlan.objects.create(name=name, service=service, requests=requests)


def _bench(plan, status: str, age: timedelta, *, digest: str = "", passed=None, findings=None) -> int:
    run = BenchmarkRun.objects.create(plan=plan, status=status, config_digest=digest, passed=passed,
                                      findings=findings or {}, report_html="<p>report</p>")  # fmt: skip
    at = timezone.now() - age
    finished = None if status in ("pending", "running") else at
    BenchmarkRun.objects.filter(pk=run.pk).update(created_at=at, finished_at=finished)
    return run.pk


def _regression(run_id: int, *, acknowledged: bool) -> int:
    run = BenchmarkRun.objects.get(pk=run_id)
    return Regression.objects.create(
        plan_id=run.plan_id, run=run, baseline=10, current=20, change_pct=100, p_value=0.001, threshold_pct=5,
        acknowledged_at=timezone.now() if acknowledged else None,
    ).pk  # fmt: skip


def _optimization(target: str, status: str, age: timedelta, *, steps=(), recommendation=None) -> int:
    run = OptimizationRun.objects.create(target=target, status=status, report_html="<p>report</p>")
    at = timezone.now() - age
    finished = None if status in ("pending", "running") else at
    OptimizationRun.objects.filter(pk=run.pk).update(started_at=at, finished_at=finished)
    for position, (name, step_status, findings) in enumerate(steps):
        OptimizationStep.objects.create(run=run, name=name, position=position, status=step_status,
                                        findings=findings, started_at=at)  # fmt: skip
    if recommendation is not None:
        status, outcome = recommendation
        Recommendation.objects.create(run=run, step="database", kind="create_index", subject="ix", title="Index",
                                      reason="slow", status=status, outcome=outcome)  # fmt: skip
    return run.pk


def _alert(state: str, age: timedelta, *, notified: bool = False) -> int:
    at = timezone.now() - age
    alert = Alert.objects.create(rule=None, rule_name="p95", state=state, started_at=at - timedelta(hours=1),
                                 resolved_at=at if state == "resolved" else None, value=1, last_value=1,
                                 message="p95 above 2 s")  # fmt: skip
    if notified:
        AlertNotification.objects.create(alert=alert, event="firing", channel="email", target="ops@example.org")
    return alert.pk


@pytest.fixture
def service_log():
    """The lines apps.core.services logs, from a handler of its own: the Celery task's run may set logging up
    again, which drops caplog's handler from the root logger."""
    lines: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger("apps.core.services")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


@pytest.mark.django_db
def test_migrate_installs_the_daily_schedule_beat_reads():
    task = PeriodicTask.objects.get(name=SCHEDULE)
    assert task.task == TASK and task.enabled and task.queue is None
    assert (task.interval.every, task.interval.period) == (1, "days")
    entry = DatabaseScheduler(app=celery_app, lazy=True).all_as_schedule()[SCHEDULE]
    assert entry.schedule.run_every == timedelta(days=1)
    assert celery_app.amqp.router.route({}, TASK)["queue"].name == "default"  # never behind a day-long load test


@pytest.mark.django_db
def test_old_finished_benchmark_runs_go_what_is_still_needed_stays(settings, service_log):
    settings.HISTORY_KEEP_DAYS = 90
    plan = _plan("nightly load")
    # 22 old successful runs of one load: the newest 20 are what the next run's regression check reads.
    loads = [_bench(plan, "succeeded", OLD + timedelta(days=n), digest="load-a") for n in range(BASELINE_RUNS * 4 + 2)]
    window, beyond = loads[: BASELINE_RUNS * 4], loads[BASELINE_RUNS * 4 :]
    failed = _bench(plan, "failed", OLD)
    acknowledged = _regression(failed, acknowledged=True)
    Regression.objects.filter(pk=acknowledged).update(acknowledged_at=timezone.now() - OLD)  # long since decided
    unacknowledged_run = _bench(plan, "cancelled", OLD)
    unacknowledged = _regression(unacknowledged_run, acknowledged=False)
    running, pending = _bench(plan, "running", OLD), _bench(plan, "pending", OLD)
    latest = _bench(plan, "failed", RECENT)
    alone = _bench(_plan("quarterly volume", slug="other"), "invalid", OLD)  # its plan's only (latest) run

    result = _run_as_beat_sends_it()

    assert result["benchmarks.BenchmarkRun"] == 3 and result["benchmarks.Regression"] == 1
    assert not BenchmarkRun.objects.filter(pk__in=[*beyond, failed]).exists()
    assert not Regression.objects.filter(pk=acknowledged).exists()
    kept = [*window, unacknowledged_run, running, pending, latest, alone]
    assert set(BenchmarkRun.objects.values_list("pk", flat=True)) == set(kept)  # the baseline survives
    assert Regression.objects.filter(pk=unacknowledged).exists()
    logged = [line for line in service_log if "history older than 90 days pruned" in line]
    assert len(logged) == 1 and json.loads(logged[0].split("pruned: ", 1)[1]) == result
    assert not [line for line in service_log if "MRN" in line or "report" in line]  # counts, nothing of the rows


@pytest.mark.django_db
def test_old_finished_optimization_runs_go_open_and_latest_ones_stay():
    counters = [("database", "succeeded", {"counters": {"t": 1}})]
    baseline = _optimization("all", "succeeded", OLD + timedelta(days=5), steps=counters)  # the scan baseline
    done = _optimization("all", "succeeded", OLD, steps=[("database", "succeeded", {}), ("caching", "skipped", {})],
                         recommendation=("applied", {"note": "built"}))  # fmt: skip
    failed_for_good = _optimization("all", "failed", OLD, recommendation=("failed", {"error": "refused"}))
    pending = _optimization("all", "succeeded", OLD, recommendation=("pending", {}))
    lost = _optimization("all", "succeeded", OLD, recommendation=("failed", {"error": "lost", "lost": True}))
    step_running = _optimization("all", "failed", OLD, steps=[("model", "running", {})])
    running = _optimization("all", "running", OLD)
    latest_all = _optimization("all", "succeeded", RECENT)
    latest_caching = _optimization("caching", "failed", OLD)

    result = services.history_prune(keep_days=90)

    assert {key: n for key, n in result.items() if key.startswith("optimizer.")} == {
        "optimizer.OptimizationRun": 2, "optimizer.OptimizationStep": 2, "optimizer.Recommendation": 2,
    }  # fmt: skip
    assert not OptimizationRun.objects.filter(pk__in=[done, failed_for_good]).exists()
    kept = {baseline, pending, lost, step_running, running, latest_all, latest_caching}
    assert set(OptimizationRun.objects.values_list("pk", flat=True)) == kept


@pytest.mark.django_db
def test_resolved_alerts_go_with_their_notifications_firing_ones_stay():
    old = _alert("resolved", OLD, notified=True)
    firing = _alert("firing", OLD, notified=True)
    recent = _alert("resolved", RECENT)

    result = services.history_prune(keep_days=90)

    assert (result["metrics.Alert"], result["metrics.AlertNotification"]) == (1, 1)
    assert not Alert.objects.filter(pk=old).exists()
    assert set(Alert.objects.values_list("pk", flat=True)) == {firing, recent}
    assert AlertNotification.objects.filter(alert_id=firing).count() == 1


@pytest.mark.django_db
def test_a_backlog_is_deleted_in_batches():
    plan = _plan("nightly load")
    old_runs = [_bench(plan, "failed", OLD + timedelta(minutes=n)) for n in range(7)]
    latest = _bench(plan, "failed", RECENT)
    for _ in range(7):
        _optimization("database", "succeeded", OLD)
    latest_optimization = _optimization("database", "succeeded", RECENT)
    for _ in range(5):
        _alert("resolved", OLD)

    with CaptureQueriesContext(connection) as queries:
        result = services.history_prune(keep_days=90, batch_size=3)

    def deletes(table: str) -> int:
        start = f'DELETE FROM "{table}" WHERE'  # noqa: S608 (a table this file names)
        return sum(q["sql"].startswith(start) for q in queries.captured_queries)

    labels = ("benchmarks.BenchmarkRun", "optimizer.OptimizationRun", "metrics.Alert")
    assert [result[label] for label in labels] == [7, 7, 5]
    # 3, 3, 1 and 3, 3, 1 and 3, 2: each batch its own statement, never one DELETE over the whole backlog
    tables = ("benchmarks_benchmarkrun", "optimizer_optimizationrun", "metrics_alert")
    assert [deletes(table) for table in tables] == [3, 3, 2]
    assert not BenchmarkRun.objects.filter(pk__in=old_runs).exists()
    assert list(BenchmarkRun.objects.values_list("pk", flat=True)) == [latest]
    assert list(OptimizationRun.objects.values_list("pk", flat=True)) == [latest_optimization]
    assert not Alert.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_takes_the_scheduled_task_and_prunes(broker_emptied, worker):
    old = _alert("resolved", OLD)
    firing = _alert("firing", OLD)

    celery_app.send_task(TASK)  # what beat sends: the task by name, routed by CELERY_TASK_ROUTES

    deadline = time.monotonic() + 120  # as other tests starting a worker allow it
    while Alert.objects.filter(pk=old).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Alert.objects.filter(pk=old).exists()
    assert Alert.objects.filter(pk=firing).exists()


@pytest.mark.parametrize("value", ["0", "36601", "ninety"])
def test_a_bad_retention_stops_start_up_in_one_line(tmp_path, value):
    result = manage("check", env=embedded_env(tmp_path, HISTORY_KEEP_DAYS=value))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "HISTORY_KEEP_DAYS" in result.stderr and "Traceback" not in result.stderr


# --- review a2 of 2fa1b6d -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_recommendation_decided_yesterday_is_kept_with_its_run():
    """Applied today on a 200-day-old run's pending recommendation: what changed, who decided and the measure
    after it (followups_measure's) were deleted that night with the run."""
    old_run = _optimization("database", "succeeded", OLD, recommendation=("pending", {}))
    dismissed_long_ago = _optimization("database", "succeeded", OLD, recommendation=("pending", {}))
    _optimization("database", "succeeded", RECENT)  # the target's latest run: neither old one is "latest"
    Recommendation.objects.filter(run_id=old_run).update(
        status="applied", decided_at=timezone.now() - timedelta(days=1), decided_via="admin",
        outcome={"note": "built", "before": {"indexes": []}},
    )  # fmt: skip
    Recommendation.objects.filter(run_id=dismissed_long_ago).update(
        status="dismissed", decided_at=timezone.now() - OLD, decided_via="admin"
    )

    result = services.history_prune(keep_days=90)

    assert Recommendation.objects.filter(run_id=old_run).exists(), "a change made yesterday lost its record"
    assert OptimizationRun.objects.filter(pk=old_run).exists()
    assert not OptimizationRun.objects.filter(pk=dismissed_long_ago).exists()  # decided before the cutoff: goes
    assert (result["optimizer.OptimizationRun"], result["optimizer.Recommendation"]) == (1, 1)


@pytest.mark.django_db
def test_a_regression_acknowledged_yesterday_is_kept_with_its_run():
    plan = _plan("nightly load")
    old = _bench(plan, "failed", OLD)
    acknowledged_long_ago = _bench(plan, "failed", OLD)
    _bench(plan, "failed", RECENT)
    regression = _regression(old, acknowledged=True)  # acknowledged now: a person looked at it today
    gone = _regression(acknowledged_long_ago, acknowledged=True)
    Regression.objects.filter(pk=gone).update(acknowledged_at=timezone.now() - OLD)

    result = services.history_prune(keep_days=90)

    assert Regression.objects.filter(pk=regression).exists(), "acknowledged today, deleted tonight"
    assert BenchmarkRun.objects.filter(pk=old).exists()
    assert not Regression.objects.filter(pk=gone).exists()
    assert (result["benchmarks.BenchmarkRun"], result["benchmarks.Regression"]) == (1, 1)


@pytest.mark.django_db
def test_each_batch_carries_a_bounded_number_of_parameters():
    """The keep-set went into every statement (`.exclude(pk__in=...)`, twice per DELETE): 24,134 kept runs of a
    million took 2 s per batch, about an hour for the backlog. Now a batch carries its own keys at most."""
    plan = _plan("nightly load")
    kept = [
        _bench(plan, "succeeded", OLD + timedelta(days=load * 30, minutes=n), digest=f"load-{load}")
        for load in range(10)  # ten edits of the plan's load over the years: each one's baseline window kept
        for n in range(BASELINE_RUNS * 4)
    ]
    beyond = _bench(plan, "succeeded", OLD + timedelta(days=400), digest="load-0")  # past load-0's window
    failed = [_bench(plan, "failed", OLD + timedelta(hours=n)) for n in range(30)]
    latest = _bench(plan, "failed", OLD - timedelta(hours=1))  # the plan's latest finished run, old as it is
    sizes: list[int] = []

    def record(execute, sql, params, many, context):
        if "benchmarks_benchmarkrun" in sql:
            sizes.append(len(params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        result = services.history_prune(keep_days=90, batch_size=10)

    assert max(sizes) < 50, f"a statement carried {max(sizes)} parameters: the keep-set, once per batch"
    assert result["benchmarks.BenchmarkRun"] == len(failed) + 1
    assert set(BenchmarkRun.objects.values_list("pk", flat=True)) == {*kept, latest}
    assert not BenchmarkRun.objects.filter(pk=beyond).exists()


def _core_migrated_back_and_forth() -> None:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("core", "0005_prune_sign_ins_schedule")])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("core"))


@pytest.mark.django_db
def test_a_disabled_prune_stays_disabled_when_core_is_migrated_back_and_forth():
    """A downgrade past 0006 deleted the row, the upgrade after it made it anew, enabled: a hold lifted unseen."""
    PeriodicTask.objects.filter(name=SCHEDULE).update(enabled=False, description="LEGAL HOLD")

    _core_migrated_back_and_forth()

    task = PeriodicTask.objects.get(name=SCHEDULE)
    assert (task.enabled, task.description) == (False, "LEGAL HOLD"), "the hold was lifted by migrating"


@pytest.mark.django_db
def test_an_enabled_schedule_is_removed_on_reverse_and_made_again():
    """As every seeded schedule: the reverse takes its row away (the older code has no such task)."""
    from django.db.migrations.executor import MigrationExecutor

    MigrationExecutor(connection).migrate([("core", "0005_prune_sign_ins_schedule")])
    assert not PeriodicTask.objects.filter(name=SCHEDULE).exists()
    _core_migrated_back_and_forth()
    assert PeriodicTask.objects.get(name=SCHEDULE).enabled
