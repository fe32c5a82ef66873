"""The schedule form's "Task (custom)" field took any name: `core.heartbeet` was saved, and the worker dropped
each send of it ("Received unregistered task") while the schedule showed enabled. It now takes only the name of
a task registered with Celery."""

import pytest

from tests.accounts.support import schedule_form

pytestmark = pytest.mark.django_db

CHANGE = "/admin/django_celery_beat/periodictask/{}/change/"


@pytest.mark.parametrize("name", ["core.heartbeet", "optimizer.scheduled", "nothing"])
def test_an_unregistered_custom_task_name_is_a_field_error(admin_client, nightly, name):
    task, crontab = nightly
    admin_client.raise_request_exception = False
    response = admin_client.post(CHANGE.format(task.pk), schedule_form(task, crontab, task=name, kwargs="{}"))
    assert response.status_code == 200, response.status_code  # was 302: stored
    assert "is not a task registered with Celery" in str(response.context["adminform"].form.errors["task"])
    task.refresh_from_db()
    assert task.task == "optimizer.scheduled_run"


def test_a_registered_custom_task_name_still_saves(admin_client, nightly):
    task, crontab = nightly
    response = admin_client.post(
        CHANGE.format(task.pk), schedule_form(task, crontab, task="core.heartbeat", kwargs="{}")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.task == "core.heartbeat"
