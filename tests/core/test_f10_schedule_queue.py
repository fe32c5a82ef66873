"""A schedule's queue took any name: `nonexistent_queue` was saved, and with the heartbeat's queue mistyped
`defualt` beat sent to a queue no worker consumes at every due time, the messages piling up unread and the
task never running. The admin now takes only the queues the workers consume, or blank (the task's route)."""

import pytest

from tests.accounts.support import schedule_form

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("queue", ["nonexistent_queue", "defualt", "Default", "celery"])
def test_a_queue_no_worker_consumes_is_a_field_error(admin_client, nightly, queue):
    task, crontab = nightly
    response = admin_client.post(
        f"/admin/django_celery_beat/periodictask/{task.pk}/change/", schedule_form(task, crontab, queue=queue)
    )
    assert response.status_code == 200, response.status_code  # was 302: saved
    errors = response.context["adminform"].form.errors
    assert errors["queue"] == [
        "Not a queue the workers consume: one of default, benchmarks, inference, or blank for the task's own route."
    ], errors
    task.refresh_from_db()
    assert task.queue in (None, "")


@pytest.mark.parametrize("queue", ["default", "benchmarks", "inference", ""])
def test_a_consumed_queue_or_blank_saves(admin_client, nightly, queue):
    task, crontab = nightly
    response = admin_client.post(
        f"/admin/django_celery_beat/periodictask/{task.pk}/change/", schedule_form(task, crontab, queue=queue)
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert (task.queue or "") == queue
