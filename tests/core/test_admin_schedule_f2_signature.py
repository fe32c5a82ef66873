"""A schedule's arguments must fit its task's signature: `args [1, 2, 3, 4]` or kwargs `{"nonse": "x"}` for
core.heartbeat were saved, beat logged a SchedulingError (or the worker a TypeError) at each due time, and
"Run selected tasks" was a 500 (TypeError) after it had sent the schedules before that one. The form now refuses
them; the action sends the schedules it can and names each one it cannot."""

import json

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django_celery_beat.models import PeriodicTask

from tests.accounts.support import schedule_form

pytestmark = pytest.mark.django_db

CHANGE = "/admin/django_celery_beat/periodictask/{}/change/"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("args", '["all", false, 3]'),  # scheduled_run(target, apply): one too many
        ("kwargs", '{"target": "all", "nonse": "x"}'),
        ("kwargs", '{"target": "all", "apply": true, "bogus": 1}'),
    ],
)
def test_arguments_that_do_not_fit_the_task_are_a_field_error(admin_client, nightly, field, value):
    task, crontab = nightly
    admin_client.raise_request_exception = False
    response = admin_client.post(CHANGE.format(task.pk), schedule_form(task, crontab, **{field: value}))
    assert response.status_code == 200, response.status_code  # was 302: stored
    errors = response.context["adminform"].form.errors
    assert field in errors and "do not fit the task optimizer.scheduled_run" in str(errors[field])
    task.refresh_from_db()
    assert task.args == "[]" and json.loads(task.kwargs) == {"target": "all"}


def test_arguments_that_fit_still_save(admin_client, nightly):
    task, crontab = nightly
    response = admin_client.post(
        CHANGE.format(task.pk), schedule_form(task, crontab, args='["database"]', kwargs='{"apply": false}')
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert json.loads(task.args) == ["database"]


def test_run_selected_tasks_sends_the_fitting_ones_and_names_the_others(admin_client, nightly, monkeypatch):
    good, crontab = nightly
    bad_args = PeriodicTask.objects.create(
        name="Bad heartbeat", task="core.heartbeat", crontab=crontab, args="[1, 2, 3, 4]"
    )
    bad_kwargs = PeriodicTask.objects.create(
        name="Bad optimize", task="optimizer.scheduled_run", crontab=crontab, kwargs='{"nonse": "x"}'
    )
    sent = []
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda self, *a, **kw: sent.append(kw) or "id")
    admin_client.raise_request_exception = False
    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/",
        {"action": "run_tasks", ACTION_CHECKBOX_NAME: [good.pk, bad_args.pk, bad_kwargs.pk]},
    )
    assert response.status_code == 302, response.status_code  # was 500 (TypeError), some already sent
    assert [kw["headers"] for kw in sent] == [{"periodic_task_name": "Nightly optimize"}]
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert texts[0] == "1 task was successfully run", texts
    assert sorted(text.split(":")[0] for text in texts[1:]) == ["Not sent", "Not sent"]
    assert any("Bad heartbeat" in text for text in texts) and any("Bad optimize" in text for text in texts)


def test_run_selected_tasks_names_an_unregistered_task(admin_client, nightly, monkeypatch):
    _, crontab = nightly
    typo = PeriodicTask.objects.create(name="Typo", task="core.heartbeet", crontab=crontab)
    sent = []
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda self, *a, **kw: sent.append(kw) or "id")
    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/", {"action": "run_tasks", ACTION_CHECKBOX_NAME: [typo.pk]}
    )
    assert response.status_code == 302 and not sent
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert texts == ['Not sent: Typo: task "core.heartbeet" is not registered'], texts
