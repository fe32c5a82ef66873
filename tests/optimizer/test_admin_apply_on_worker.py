"""The admin's "Apply the selected recommendations" built the index (CREATE INDEX CONCURRENTLY, minutes on a large
table) inside the web request: gunicorn's timeout killed it half-way, leaving an INVALID index, while the page
hung. The action now claims the recommendation (applying) and sends the change to a Celery worker (a real one
here); the admin shows where it stands, and an apply whose worker was lost is resumed or applied again, its
leftover dropped and built again."""

import time

import pytest

from apps.optimizer import services
from apps.optimizer.models import Recommendation
from tests.optimizer.support import INDEX, connect, index_state, optimize, sql

pytestmark = [
    pytest.mark.django_db(transaction=True),  # CREATE INDEX CONCURRENTLY cannot run in a transaction
    pytest.mark.usefixtures("designed_indexes_restored"),
]

CHANGELIST = "/admin/optimizer/recommendation/"


def _proposal() -> Recommendation:
    sql(f"DROP INDEX {INDEX}")
    run, _, _ = optimize("database", "--inline")
    return run.recommendations.get(kind="create_index", subject=INDEX)


def _until(check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_apply_selected_queues_the_build_and_a_worker_makes_it(data, admin_client, admin_user, broker_emptied,
                                                               request):  # fmt: skip
    proposal = _proposal()
    response = admin_client.post(CHANGELIST, {"action": "apply_selected", "_selected_action": [proposal.pk]})
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLYING, "applied inside the web request"
    assert index_state(INDEX) is None  # nothing was built in the request
    assert proposal.decided_by == admin_user and proposal.decided_via == "admin"
    page = admin_client.get(f"{CHANGELIST}{proposal.pk}/change/").content.decode()
    assert "waiting for a worker" in page
    assert "waiting for a worker" in admin_client.get(CHANGELIST).content.decode()

    request.getfixturevalue("worker")  # a worker comes up and takes the queued build
    _until(lambda: Recommendation.objects.get(pk=proposal.pk).status != Recommendation.Status.APPLYING, "the build")
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLIED, proposal.outcome
    assert proposal.outcome["index"] == INDEX and proposal.outcome["attempts"] == 1
    assert index_state(INDEX) == (True,)
    response = admin_client.post(CHANGELIST, {"action": "apply_selected", "_selected_action": [proposal.pk]},
                                 follow=True)  # fmt: skip
    assert f"Recommendation {proposal.pk} is applied." in response.content.decode()


def test_a_build_whose_worker_was_lost_is_resumed_its_leftover_built_again(data):
    proposal = _proposal()
    # The lost worker's traces: the claim it had started on (attempt 1), and its build's INVALID index.
    Recommendation.objects.filter(pk=proposal.pk).update(
        status=Recommendation.Status.APPLYING, decided_via="admin",
        outcome={"queued_at": "2026-12-01T00:00:00+00:00", "attempts": 1},
    )  # fmt: skip
    sql(f"CREATE INDEX {INDEX} ON clinical_observation (patient_id)")
    sql("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [INDEX])

    done = services.recommendation_apply_queued(recommendation_id=proposal.pk)  # the task, delivered again
    assert done.status == Recommendation.Status.APPLIED, done.outcome
    assert done.outcome["resumed"] is True and done.outcome["attempts"] == 2
    assert index_state(INDEX) == (True,)
    assert "patient_id, category" in sql("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [INDEX])[0][0]

    again = services.recommendation_apply_queued(recommendation_id=proposal.pk)  # a third delivery: nothing
    assert again.status == Recommendation.Status.APPLIED and again.outcome == done.outcome


def test_an_apply_failed_as_interrupted_can_be_applied_again_from_admin(data, admin_client, broker_emptied):
    """Its error said "Apply it again", and the admin refused it: it was no longer pending."""
    proposal = _proposal()
    Recommendation.objects.filter(pk=proposal.pk).update(
        status=Recommendation.Status.FAILED, outcome={"error": "Interrupted (SystemExit) ...", "interrupted": True}
    )
    admin_client.post(CHANGELIST, {"action": "apply_selected", "_selected_action": [proposal.pk]})
    proposal.refresh_from_db()
    assert proposal.status == Recommendation.Status.APPLYING
    assert proposal.outcome["earlier"]["interrupted"] is True

    done = services.recommendation_apply_queued(recommendation_id=proposal.pk)  # what the worker runs
    assert done.status == Recommendation.Status.APPLIED and index_state(INDEX) == (True,)


def test_a_failure_that_was_not_an_interruption_is_not_applied_again(data, admin_client, broker_emptied):
    proposal = _proposal()
    Recommendation.objects.filter(pk=proposal.pk).update(status=Recommendation.Status.FAILED,
                                                          outcome={"error": "ValueError: no"})  # fmt: skip
    response = admin_client.post(CHANGELIST, {"action": "apply_selected", "_selected_action": [proposal.pk]},
                                 follow=True)  # fmt: skip
    assert "is failed to apply" in response.content.decode()
    assert Recommendation.objects.get(pk=proposal.pk).status == Recommendation.Status.FAILED


def test_the_admin_shows_the_build_in_progress_on_the_worker(data, admin_client, broker_emptied, worker):
    """The build is made to wait, for real, on a writer the test's own session holds: the admin says so."""
    proposal = _proposal()
    holder = connect()
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE clinical_observation IN ROW EXCLUSIVE MODE")  # the build waits for this writer
        admin_client.post(CHANGELIST, {"action": "apply_selected", "_selected_action": [proposal.pk]})
        progress = _until(
            lambda: "building: waiting for writers" in (page := admin_client.get(CHANGELIST).content.decode()) and page,
            "the admin to show the build waiting",
        )
        assert "building: waiting for writers before build" in progress
    finally:
        holder.execute("COMMIT")
        holder.close()
    _until(lambda: Recommendation.objects.get(pk=proposal.pk).status != Recommendation.Status.APPLYING, "the build")
    assert Recommendation.objects.get(pk=proposal.pk).status == Recommendation.Status.APPLIED
    assert index_state(INDEX) == (True,)
