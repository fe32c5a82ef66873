"""A step still running on a worker when the stuck checker fails its run: the step's late end must not
write over FAILED, nor leave proposals (or apply changes) on the run already reported as failed."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from apps.optimizer import services
from apps.optimizer.models import OptimizationRun, OptimizationStep, Recommendation
from apps.optimizer.steps import STEPS
from apps.optimizer.types import Draft, StepResult

pytestmark = pytest.mark.django_db(transaction=True)

LATER = timedelta(hours=3)  # past OPTIMIZER_RUN_DEADLINE_SECONDS


def _draft(subject: str, *, actionable: bool = False) -> Draft:
    return Draft(kind="race", subject=subject, title=f"{subject} proposal", reason="r", change={}, evidence={},
                 actionable=actionable)  # fmt: skip


def _checker_runs_meanwhile(drafts: list[Draft]):
    def measure(goals, progress):
        assert services.optimization_runs_fail_stuck(now=timezone.now() + LATER) == 1
        return StepResult(findings={"x": 1}, drafts=drafts)

    return measure


def test_a_step_ending_after_the_stuck_checker_failed_its_run_keeps_the_failure_and_stores_nothing():
    run = services.optimization_run_create(target="caching")
    step = run.steps.get()
    with (
        mock.patch.object(STEPS["caching"], "measure", side_effect=_checker_runs_meanwhile([_draft("late")])),
        mock.patch.object(STEPS["caching"], "verdicts", return_value=[]),
    ):
        returned = services.optimization_step_execute(step_id=step.pk)

    run.refresh_from_db()
    step.refresh_from_db()
    assert run.status == OptimizationRun.Status.FAILED and "caching failed" in run.error
    assert step.status == OptimizationStep.Status.FAILED and "deadline" in step.error
    assert returned.status == OptimizationStep.Status.FAILED
    assert not run.recommendations.exists()


def test_a_step_whose_run_fails_while_it_applies_stops_applying_and_drops_its_pending_proposals():
    run = services.optimization_run_create(target="caching", apply=True)
    step = run.steps.get()
    applied = []

    def apply(change, subject, evidence=None):
        applied.append(subject)
        assert services.optimization_runs_fail_stuck(now=timezone.now() + LATER) == 1
        return {"changed": subject}

    drafts = [_draft("first", actionable=True), _draft("second", actionable=True), _draft("advice")]
    _execute_applying(step.pk, drafts, apply)

    run.refresh_from_db()
    step.refresh_from_db()
    assert applied == ["first"]  # the run failed during the first change: the second is not made
    assert run.status == OptimizationRun.Status.FAILED and step.status == OptimizationStep.Status.FAILED
    assert dict(run.recommendations.values_list("subject", "status")) == {"first": Recommendation.Status.APPLIED}


def test_a_step_still_running_when_its_run_was_finished_is_failed_without_proposals():
    run = services.optimization_run_create(target="caching")
    step = run.steps.get()

    def measure(goals, progress):
        services.optimization_run_finalize(run_id=run.pk)  # "never finished": the step is left running
        return StepResult(findings={"x": 1}, drafts=[_draft("late")])

    with (
        mock.patch.object(STEPS["caching"], "measure", side_effect=measure),
        mock.patch.object(STEPS["caching"], "verdicts", return_value=[]),
    ):
        services.optimization_step_execute(step_id=step.pk)

    step.refresh_from_db()
    assert step.status == OptimizationStep.Status.FAILED and "dropped" in step.error and step.finished_at
    assert not run.recommendations.exists()


def test_a_step_that_ends_in_time_stores_its_proposals_and_succeeds():
    run = services.optimization_run_create(target="caching")
    step = run.steps.get()
    with (
        mock.patch.object(STEPS["caching"], "measure", return_value=StepResult(findings={"x": 1},
                                                                               drafts=[_draft("kept")])),
        mock.patch.object(STEPS["caching"], "verdicts", return_value=[]),
    ):  # fmt: skip
        returned = services.optimization_step_execute(step_id=step.pk)

    step.refresh_from_db()
    assert returned.status == step.status == OptimizationStep.Status.SUCCEEDED
    assert step.findings == {"x": 1} and step.progress == 1.0 and step.finished_at
    assert list(run.recommendations.values_list("subject", "status")) == [("kept", "pending")]


def test_a_run_measuring_meanwhile_does_not_take_the_changes_an_applying_run_is_about_to_make():
    """Two runs at once (an `optimize --apply` and the nightly dry run): the dry run's proposals used to
    supersede the applying run's pending ones, and its next apply failed the whole step on "superseded"."""
    run = services.optimization_run_create(target="caching", apply=True)
    applied = []

    def apply(change, subject, evidence=None):
        if not applied:  # while the first change is made, another run stores the same proposals
            other = services.optimization_run_create(target="caching")
            services._store_recommendations(other, "caching", [_draft("first", actionable=True),
                                                               _draft("second", actionable=True)])  # fmt: skip
        applied.append(subject)
        return {"changed": subject}

    drafts = [_draft("first", actionable=True), _draft("second", actionable=True)]
    step = _execute_applying(run.steps.get().pk, drafts, apply)
    assert step.status == OptimizationStep.Status.SUCCEEDED, step.error
    assert applied == ["first", "second"]
    assert dict(run.recommendations.values_list("subject", "status")) == {"first": "applied", "second": "applied"}


def test_a_proposal_an_admin_decides_while_the_run_applies_is_left_as_decided():
    run = services.optimization_run_create(target="caching", apply=True)
    applied = []

    def apply(change, subject, evidence=None):
        if not applied:
            second = run.recommendations.get(subject="second")
            services.recommendation_dismiss(recommendation=second, via="admin")
        applied.append(subject)
        return {"changed": subject}

    drafts = [_draft("first", actionable=True), _draft("second", actionable=True)]
    step = _execute_applying(run.steps.get().pk, drafts, apply)
    assert step.status == OptimizationStep.Status.SUCCEEDED, step.error
    assert applied == ["first"]
    assert dict(run.recommendations.values_list("subject", "status")) == {"first": "applied", "second": "dismissed"}


def _execute_applying(step_id: int, drafts: list, apply) -> OptimizationStep:
    """Execute the caching step with `drafts` measured and `apply` making each change (no cache is touched)."""
    with (
        mock.patch.object(STEPS["caching"], "measure", return_value=StepResult(findings={"x": 1}, drafts=drafts)),
        mock.patch.object(STEPS["caching"], "apply", side_effect=apply),
        mock.patch.object(STEPS["caching"], "remeasure", side_effect=lambda findings, applied, progress: findings),
        mock.patch.object(STEPS["caching"], "verdicts", return_value=[]),
    ):
        return services.optimization_step_execute(step_id=step_id)
