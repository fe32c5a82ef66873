"""The schedules' "Run selected tasks" with the broker down was a 500 (kombu's OperationalError out of
django-celery-beat's action); the benchmark, scaling and inference "send now" actions say the broker is
unreachable instead. It now does the same."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from kombu.exceptions import OperationalError

pytestmark = pytest.mark.django_db


def test_run_selected_tasks_with_the_broker_down_says_so(admin_client, nightly, monkeypatch):
    task, _ = nightly

    def unreachable(self, *args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr("celery.app.task.Task.apply_async", unreachable)
    admin_client.raise_request_exception = False
    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/", {"action": "run_tasks", ACTION_CHECKBOX_NAME: [task.pk]}
    )
    assert response.status_code == 302, response.status_code  # was 500
    texts = [str(message) for message in get_messages(response.wsgi_request)]
    assert texts == [
        "The selected tasks were not sent: the broker did not take it "
        "(OperationalError: [Errno 111] Connection refused)."
    ], texts


def test_run_selected_tasks_still_sends(admin_client, nightly, monkeypatch):
    task, _ = nightly
    sent = []
    monkeypatch.setattr("celery.app.task.Task.apply_async", lambda self, *a, **kw: sent.append(kw) or "id")
    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/", {"action": "run_tasks", ACTION_CHECKBOX_NAME: [task.pk]}
    )
    assert response.status_code == 302
    assert [kw["headers"] for kw in sent] == [{"periodic_task_name": "Nightly optimize"}]
    assert "1 task was successfully run" in [str(m) for m in get_messages(response.wsgi_request)]
