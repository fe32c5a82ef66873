"""`optimize {all,database,caching,model,scaling}`: runs and steps (inline and on a real worker), targets
and exit codes, caching recommendations, the apply/dismiss flow in admin, follow-ups, stuck runs, report."""

import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import CommandError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.caching.models import CachePolicy
from apps.caching.services import cache_policy_ensure
from apps.caching.stack import default_stack
from apps.metrics.services import cache_series_record
from apps.optimizer import caching as cache_optimizer
from apps.optimizer import services
from apps.optimizer.models import OptimizationRun, OptimizationStep, Recommendation
from tests.optimizer.support import optimize

pytestmark = pytest.mark.django_db(transaction=True)


def _reads(namespace: str, *, keys: int, reads: int, tag: str = "first") -> None:
    """Real reads through this process's cache stack; `keys` distinct keys set the hit rate."""
    stack = default_stack()
    for i in range(reads):
        stack.get_or_load(namespace, ("optimizer-test", tag, i % keys), lambda i=i: {"value": i})
    stack.flush_stats()


def test_all_inline_completes_on_an_empty_system_and_stores_its_report(client, admin_user):
    run, output, code = optimize("all", "--inline")
    assert code == 0, output
    assert run.status == "succeeded" and run.targets_met is None
    steps = dict(run.steps.values_list("name", "status"))
    assert steps == {"database": "skipped", "caching": "succeeded", "model": "skipped", "scaling": "skipped"}
    assert "load_synthetic" in run.steps.get(name="database").findings["skipped"]
    assert "not measured" in run.report_html and "Targets" in run.report_html
    client.force_login(admin_user)
    assert "Recommendations" in client.get(f"/optimizer/runs/{run.pk}/report/").content.decode()


def test_an_unreachable_response_time_fails_the_exit_code(data):
    run, output, code = optimize("all", "--inline", "--response-time", "0.000001")
    assert code == 1, output
    assert run.status == "succeeded" and run.targets_met is False
    missed = [v for v in run.verdicts if v["met"] is False]
    assert missed and missed[0]["target"] == "response_time" and missed[0]["goal"] == pytest.approx(0.001)
    assert "MISSED" in output


def test_bad_targets_are_refused_before_anything_runs():
    """Exit status 2, as argparse's own refusals: a refused option used to exit 1, "a target missed"."""
    with pytest.raises(CommandError, match="hit-rate") as refused:
        optimize("caching", "--inline", "--cache-hit-rate", "1.5")
    assert refused.value.returncode == 2
    with pytest.raises(CommandError, match="No service") as refused:
        optimize("caching", "--inline", "--service", "nope")
    assert refused.value.returncode == 2
    assert not OptimizationRun.objects.exists()


def test_a_run_that_cannot_finish_exits_2_not_the_1_of_a_missed_target():
    """The database lost while the run is settled (injected: the report's rendering raises what a dropped
    connection raises): the command died with a traceback and exit status 1."""
    from django.db import OperationalError

    with (
        mock.patch("apps.optimizer.services.render_report", side_effect=OperationalError("server closed")),
        pytest.raises(CommandError, match="could not finish: OperationalError") as failed,
    ):
        optimize("caching", "--inline")
    assert failed.value.returncode == 2


def test_ctrl_c_while_following_the_workers_cancels_the_run():
    """Interrupted while it waited for the workers, the command left the run pending: a worker coming
    later ran it with no one following, or the stuck checker failed it two hours on."""
    from controlplane.celery import app

    try:
        with (
            mock.patch("apps.optimizer.management.commands.optimize.time.sleep", side_effect=KeyboardInterrupt),
            pytest.raises(CommandError, match="Interrupted") as interrupted,
        ):
            optimize("caching")
    finally:
        app.control.purge()  # no worker here: the sent step would wait for the next test's
    assert interrupted.value.returncode == 2
    run = OptimizationRun.objects.get()
    assert run.status == OptimizationRun.Status.FAILED and "interrupted" in run.error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"target": "bogus"}, "Unknown target"), ({"target": "all", "apply": "false"}, "apply must be")],
)
def test_a_schedule_with_bad_kwargs_stores_no_run(kwargs, message):
    """A schedule's kwargs are JSON typed in admin: an unknown target used to store a run whose step failed
    outside its error handling on the worker, leaving the run `running` until the stuck checker."""
    from apps.optimizer.tasks import scheduled_run

    with pytest.raises(ValueError, match=message):
        scheduled_run(**kwargs)
    assert not OptimizationRun.objects.exists()


def test_ttl_model_round_trip():
    ttl = cache_optimizer.ttl_for_hit_rate(ttl_seconds=600, measured=0.5, target=0.8)
    assert ttl == pytest.approx(2400)
    assert cache_optimizer.predicted_hit_rate(ttl_seconds=600, measured=0.5, new_ttl_seconds=ttl) == pytest.approx(0.8)


def test_a_low_hit_rate_gets_a_ttl_inside_the_freshness_limit_and_misses_the_target():
    _reads("vital_signs", keys=250, reads=300)  # 50 hits in 300 reads
    run, output, code = optimize("caching", "--inline", "--cache-hit-rate", "0.8")
    assert code == 1, output
    figures = {n["namespace"]: n for n in run.steps.get(name="caching").findings["namespaces"]}
    assert figures["vital_signs"]["reads"] == 300
    assert figures["vital_signs"]["hit_rate"] == pytest.approx(50 / 300, abs=1e-4)
    recommendation = run.recommendations.get(kind="cache_ttl", subject="vital_signs")
    # The model wants far more than 600 s; vital signs may be at most 1200 s old.
    assert recommendation.change == {"ttl_seconds": 1200} and "capped" in recommendation.title
    assert recommendation.evidence["needed_ttl_seconds"] > 1200
    assert CachePolicy.objects.get(namespace="vital_signs").ttl_seconds == 600  # dry run: nothing changed


def test_without_a_freshness_limit_the_ttl_is_left_alone_and_the_advice_says_why():
    cache_policy_ensure(namespace="medications")
    CachePolicy.objects.filter(namespace="medications").update(max_ttl_seconds=None)
    _reads("medications", keys=250, reads=300)
    run, _, _ = optimize("caching", "--inline")
    advice = run.recommendations.get(subject="medications")
    assert advice.kind == "cache_ttl_limit" and not advice.actionable and "no freshness limit" in advice.reason


def test_admin_applies_and_dismisses_recommendations_and_both_are_audited(admin_client, admin_user):
    _reads("vital_signs", keys=250, reads=300)
    _reads("medications", keys=250, reads=300)
    run, _, _ = optimize("caching", "--inline")
    vitals = run.recommendations.get(kind="cache_ttl", subject="vital_signs")
    meds = run.recommendations.get(kind="cache_ttl", subject="medications")
    changelist = "/admin/optimizer/recommendation/"

    response = admin_client.post(changelist, {"action": "apply_selected", "_selected_action": [vitals.pk]})
    assert response.status_code == 302
    assert Recommendation.objects.get(pk=vitals.pk).status == "applying"  # sent to a worker
    _worker_applies(vitals)
    vitals.refresh_from_db()
    assert vitals.status == "applied" and vitals.decided_by == admin_user and vitals.decided_via == "admin"
    assert vitals.outcome.pop("attempts") == 1 and vitals.outcome.pop("queued_at")  # applied by a worker
    assert vitals.outcome == {
        "namespace": "vital_signs",
        "before": {"ttl_seconds": 600},
        "after": {"ttl_seconds": 1200},
    }
    assert CachePolicy.objects.get(namespace="vital_signs").ttl_seconds == 1200

    admin_client.post(changelist, {"action": "dismiss_selected", "_selected_action": [meds.pk]})
    meds.refresh_from_db()
    assert meds.status == "dismissed" and meds.decided_by == admin_user
    assert CachePolicy.objects.get(namespace="medications").ttl_seconds == 1200  # unchanged (seeded 20 min)

    admin_client.post(changelist, {"action": "apply_selected", "_selected_action": [vitals.pk]})
    assert CachePolicy.objects.get(namespace="vital_signs").ttl_seconds == 1200  # applying twice changes nothing
    audited = AuditEvent.objects.filter(resource_type="OptimizationRecommendation").order_by("seq")
    assert [(e.actor_name, e.resource_id) for e in audited] == [
        ("admin", f"{vitals.pk}:applied"),
        ("admin", f"{meds.pk}:dismissed"),
    ]
    assert "Pending recommendations" in admin_client.get("/admin/overview/").content.decode()


def _worker_applies(recommendation: Recommendation) -> None:
    """What the worker runs for the admin's apply, here (test_admin_apply_on_worker.py runs it on a real worker)."""
    from controlplane.celery import app

    app.control.purge()
    services.recommendation_apply_queued(recommendation_id=recommendation.pk)


def test_the_next_run_measures_what_an_applied_change_really_did():
    cache_series_record()  # the metrics beat's baseline
    _reads("vital_signs", keys=250, reads=300)
    cache_series_record()
    run, _, _ = optimize("caching", "--inline")
    services.recommendation_apply(recommendation=run.recommendations.get(subject="vital_signs", kind="cache_ttl"))
    time.sleep(0.01)
    _reads("vital_signs", keys=20, reads=300, tag="after")  # after the change: 280 hits in 300 reads
    cache_series_record()
    later, _, _ = optimize("caching", "--inline")
    followup = later.steps.get(name="caching").findings["followups"][0]
    assert followup["namespace"] == "vital_signs"
    assert followup["measured_after"]["reads"] == 300
    assert followup["measured_after"]["hit_rate"] == pytest.approx(280 / 300, abs=1e-3)
    assert "predicted against measured" in later.report_html


def test_a_step_whose_worker_was_lost_runs_again_and_a_finished_step_is_left_alone():
    _reads("vital_signs", keys=250, reads=300)
    run = services.optimization_run_create(target="caching")
    step = run.steps.get()
    OptimizationStep.objects.filter(pk=step.pk).update(status="running", attempts=1)  # the worker died here
    Recommendation.objects.create(run=run, step="caching", kind="cache_ttl", subject="vital_signs", title="half",
                                  reason="from the lost attempt", change={"ttl_seconds": 700})  # fmt: skip

    step = services.optimization_step_execute(step_id=step.pk)
    assert step.status == "succeeded" and step.attempts == 2
    assert list(run.recommendations.values_list("reason", flat=True)) != ["from the lost attempt"]
    assert run.recommendations.filter(subject="vital_signs").count() == 1

    again = services.optimization_step_execute(step_id=step.pk)
    assert again.attempts == 2  # redelivered after it finished: nothing runs twice


def test_runs_stuck_past_their_deadline_are_failed(settings):
    run = services.optimization_run_create(target="all")
    OptimizationRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(hours=3))
    assert services.optimization_runs_fail_stuck() == 1
    run.refresh_from_db()
    assert run.status == "failed" and "database failed" in run.error
    assert set(run.steps.values_list("status", flat=True)) == {"failed"}
    assert services.run_exit_code(run) == 2 and run.report_html


@pytest.mark.slow
def test_steps_run_as_tasks_on_a_real_worker(worker):
    _reads("vital_signs", keys=250, reads=300)
    run, output, code = optimize("all", "--timeout", "120")
    assert code == 1, output  # measured on the worker: 50 of 300 reads hit, under the 80% target
    assert not run.inline and run.status == "succeeded" and run.targets_met is False
    assert list(run.steps.values_list("name", "attempts")) == [
        ("database", 1), ("caching", 1), ("model", 1), ("scaling", 1),
    ]  # fmt: skip
    assert run.recommendations.filter(subject="vital_signs").exists()
    assert "[caching" in output  # progress followed from the workers' updates
    assert "restarted" not in output  # each step's first start was "restarted (attempt 1): its worker was lost"


def test_runs_still_going_are_in_the_live_feed_with_their_progress():
    from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
    from apps.metrics.selectors import live_snapshot
    from apps.services.services import service_ensure

    run = services.optimization_run_create(target="all")
    OptimizationStep.objects.filter(run=run, name="database").update(status="skipped")
    OptimizationStep.objects.filter(run=run, name="caching").update(status="running", progress_message="measuring")
    service, _ = service_ensure(slug="feed", name="Feed")
    plan = BenchmarkPlan.objects.create(name="feed load", service=service)
    BenchmarkRun.objects.create(plan=plan, status="running", progress=0.25, progress_message="15 s")

    work = {item["kind"]: item for item in live_snapshot()["work"]}
    assert work["optimization"]["progress"] == 0.25 and work["optimization"]["message"] == "caching: measuring"
    assert work["benchmark"] == {"kind": "benchmark", "id": plan.runs.get().pk, "name": "feed load",
                                 "status": "running", "progress": 0.25, "message": "15 s"}  # fmt: skip


def test_a_proposal_the_policy_has_moved_past_is_refused_when_applied_later():
    """Applied from admin days later, a proposal computed on a TTL an admin has changed since overwrote the
    admin's value (1200 -> 2400 s proposed; the admin set 1800; applied: 2400), and a TTL raise went through
    on a namespace whose freshness limit was removed meanwhile (the optimizer never raises one without)."""
    _reads("vital_signs", keys=250, reads=300)
    _reads("medications", keys=250, reads=300)
    run, _, _ = optimize("caching", "--inline")
    vitals = run.recommendations.get(kind="cache_ttl", subject="vital_signs")  # 600 s -> 1200 s
    meds = run.recommendations.get(kind="cache_ttl", subject="medications")  # 1200 s -> 2400 s
    CachePolicy.objects.filter(namespace="vital_signs").update(max_ttl_seconds=None)
    CachePolicy.objects.filter(namespace="medications").update(ttl_seconds=1800)

    vitals = services.recommendation_apply(recommendation=vitals, via="admin")
    assert vitals.status == "failed" and "no freshness limit" in vitals.outcome["error"]
    assert CachePolicy.objects.get(namespace="vital_signs").ttl_seconds == 600
    meds = services.recommendation_apply(recommendation=meds, via="admin")
    assert meds.status == "failed" and "1800 now, not the 1200" in meds.outcome["error"]
    assert CachePolicy.objects.get(namespace="medications").ttl_seconds == 1800
