"""An admin's apply queued while no worker consumes the `inference` queue was failed by the stuck checker after
OPTIMIZER_RUN_DEADLINE_SECONDS as "its process was lost. Check whether the change was made": nothing had been
started. It is now failed as never started (no worker took it, nothing was changed, apply it again), its progress
said how long it has waited meanwhile, and an apply that started late (after waiting for a worker) is counted from
its start. The task of the earlier claim, taken by a worker after the recommendation was applied again, does
nothing: it took the new claim as its own and the new task "resumed a lost worker's build" beside it.
Real PostgreSQL, RabbitMQ and a real Celery worker."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.optimizer import selectors, services
from apps.optimizer.models import Recommendation
from tests.optimizer.support import INDEX, index_state, optimize, sql

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("designed_indexes_restored")]

CHANGELIST = "/admin/optimizer/recommendation/"
PAST_DEADLINE = timedelta(hours=2, minutes=1)  # OPTIMIZER_RUN_DEADLINE_SECONDS is 2 h


def _queued(admin_client) -> Recommendation:
    sql(f"DROP INDEX {INDEX}")
    run, _, _ = optimize("database", "--inline")
    proposal = run.recommendations.get(kind="create_index", subject=INDEX)
    admin_client.post(CHANGELIST, {"action": "apply_selected", "_selected_action": [proposal.pk]})
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLYING and proposal.outcome["attempts"] == 0
    return proposal


def test_an_apply_no_worker_started_is_failed_as_never_started(data, admin_client, broker_emptied):
    proposal = _queued(admin_client)
    progress = selectors.recommendation_progress(proposal)
    assert "waiting for a worker for 0 min; failed, nothing changed, if none starts it within 120 min" in progress

    assert services.recommendations_fail_stuck(now=timezone.now() + PAST_DEADLINE) == 1
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.FAILED
    assert proposal.outcome["not_started"] is True and "lost" not in proposal.outcome, proposal.outcome
    assert (
        proposal.outcome["error"].startswith("No worker took its apply")
        and "nothing was changed" in (proposal.outcome["error"])
    )
    assert "Check whether the change was made" not in selectors.recommendation_progress(proposal)
    assert index_state(INDEX) is None


def test_an_apply_started_late_counts_from_its_start(data, admin_client, broker_emptied):
    """Queued 2 h ago, a worker came and began it a minute ago: it is building, not lost."""
    proposal = _queued(admin_client)
    outcome = {**proposal.outcome, "attempts": 1, "started_at": (timezone.now() + timedelta(hours=2)).isoformat()}
    Recommendation.objects.filter(pk=proposal.pk).update(outcome=outcome)
    assert services.recommendations_fail_stuck(now=timezone.now() + PAST_DEADLINE) == 0
    assert Recommendation.objects.get(pk=proposal.pk).status == Recommendation.Status.APPLYING

    # Begun 2 h 1 min ago and still applying: its process was lost.
    assert services.recommendations_fail_stuck(now=timezone.now() + PAST_DEADLINE + timedelta(hours=2)) == 1
    assert Recommendation.objects.get(pk=proposal.pk).outcome["lost"] is True


def test_applied_again_the_earlier_task_does_nothing_and_a_worker_applies_it_once(
    data, admin_client, broker_emptied, request
):
    proposal = _queued(admin_client)
    first_claim = proposal.outcome["queued_at"]
    services.recommendations_fail_stuck(now=timezone.now() + PAST_DEADLINE)
    response = admin_client.post(CHANGELIST, {"action": "apply_selected", "_selected_action": [proposal.pk]},
                                 follow=True)  # fmt: skip
    assert "Queued: " in response.content.decode(), "a recommendation never started could not be applied again"
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLYING and proposal.outcome["earlier"]["not_started"] is True

    # The earlier claim's task, delivered now: it leaves the new claim to its own task.
    services.recommendation_apply_queued(recommendation_id=proposal.pk, queued_at=first_claim)
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLYING and proposal.outcome["attempts"] == 0
    assert index_state(INDEX) is None

    request.getfixturevalue("worker")  # takes both messages, the earlier claim's first
    deadline = time.monotonic() + 120
    while Recommendation.objects.get(pk=proposal.pk).status == Recommendation.Status.APPLYING:
        assert time.monotonic() < deadline, "the worker did not apply it"
        time.sleep(0.2)
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLIED, proposal.outcome
    assert proposal.outcome["attempts"] == 1 and not proposal.outcome.get("resumed"), proposal.outcome
    assert index_state(INDEX) == (True,)
