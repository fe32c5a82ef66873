"""A schedule's arguments are what Celery sends: a JSON list (args) and a JSON object (kwargs). django-celery-beat's
form asked only for JSON, so kwargs of `[]` were stored; Celery then refused every send ("task keyword arguments
must be a mapping"): beat logged it at each due time and the task never ran, and the admin's "Run selected
tasks" on it was a 500."""

import json

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from tests.accounts.support import schedule_form

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("field", "value"),
    [("kwargs", "[]"), ("kwargs", '["all"]'), ("kwargs", "5"), ("args", '{"target": "all"}'), ("args", '"all"')],
)
def test_arguments_celery_cannot_send_are_a_field_error(admin_client, nightly, field, value):
    task, crontab = nightly
    admin_client.raise_request_exception = False
    response = admin_client.post(
        f"/admin/django_celery_beat/periodictask/{task.pk}/change/", schedule_form(task, crontab, **{field: value})
    )
    assert response.status_code == 200, response.status_code  # was 302: stored
    assert field in response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.args == "[]" and json.loads(task.kwargs) == {"target": "all"}


def test_a_list_and_an_object_still_save_and_run(admin_client, nightly, monkeypatch):
    task, crontab = nightly
    response = admin_client.post(
        f"/admin/django_celery_beat/periodictask/{task.pk}/change/",
        schedule_form(task, crontab, args="[]", kwargs='{"target": "database", "apply": false}'),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert json.loads(task.kwargs) == {"target": "database", "apply": False}
    sent = []
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda self, *a, **kw: sent.append(kw) or "id")
    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/", {"action": "run_tasks", ACTION_CHECKBOX_NAME: [task.pk]}
    )
    assert response.status_code == 302
    assert sent and sent[0]["kwargs"] == {"target": "database", "apply": False}
