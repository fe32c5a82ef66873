"""Cancelling a run: from admin while its step measures or waits, and an `optimize --inline` interrupted
(Ctrl-C). The run ends failed with who cancelled it, nothing more is measured or applied, nothing is left
running for the stuck checker to find hours later."""

from unittest import mock

import pytest
from django.core.management import CommandError

from apps.optimizer import services
from apps.optimizer.models import OptimizationRun, OptimizationStep
from apps.optimizer.steps import STEPS
from apps.optimizer.types import Draft, StepResult
from tests.optimizer.support import optimize

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_cancels_an_unfinished_run_once(admin_client):
    run = services.optimization_run_create(target="all")
    url = "/admin/optimizer/optimizationrun/"
    response = admin_client.post(url, {"action": "cancel_selected", "_selected_action": [run.pk]}, follow=True)
    assert f"Cancelled run #{run.pk}." in response.content.decode()
    run.refresh_from_db()
    assert run.status == OptimizationRun.Status.FAILED and run.error == "Cancelled by admin."
    assert run.finished_at and "Cancelled by admin." in run.report_html
    assert set(run.steps.values_list("status", "error")) == {(OptimizationStep.Status.FAILED, "Cancelled by admin.")}
    again = admin_client.post(url, {"action": "cancel_selected", "_selected_action": [run.pk]}, follow=True)
    assert "had already finished" in again.content.decode()


def test_a_step_measuring_when_its_run_is_cancelled_stops_at_its_next_progress_report():
    run = services.optimization_run_create(target="caching", apply=True)
    step = run.steps.get()
    reached = []

    def measure(goals, progress):
        progress(0.2, "first half")
        assert services.optimization_run_cancel(run=run, by="ops")
        progress(0.5, "second half")
        reached.append("after the cancel")
        draft = Draft(kind="k", subject="s", title="t", reason="r", change={}, evidence={})
        return StepResult(findings={"x": 1}, drafts=[draft])

    with mock.patch.object(STEPS["caching"], "measure", side_effect=measure):
        services.optimization_step_execute(step_id=step.pk)
    run.refresh_from_db()
    step.refresh_from_db()
    assert not reached
    assert (step.status, step.error) == (OptimizationStep.Status.FAILED, "Cancelled by ops.")
    assert run.status == OptimizationRun.Status.FAILED and run.error == "Cancelled by ops."
    assert not run.recommendations.exists()


def test_an_interrupted_inline_run_is_cancelled_not_left_running():
    with (
        mock.patch.object(STEPS["caching"], "measure", side_effect=KeyboardInterrupt),
        pytest.raises(CommandError, match="Interrupted") as interrupted,
    ):
        optimize("caching", "--inline")
    assert interrupted.value.returncode == 2
    run = OptimizationRun.objects.get()
    assert run.status == OptimizationRun.Status.FAILED and "interrupted" in run.error
    assert run.steps.get().status == OptimizationStep.Status.FAILED
