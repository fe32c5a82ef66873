"""Beat schedules in admin: Operators retime and switch them; only Administrators choose what runs."""

import json

import pytest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.accounts.roles import ADMINISTRATORS, OPERATORS
from tests.accounts.support import schedule_form

pytestmark = pytest.mark.django_db


@pytest.fixture
def nightly() -> PeriodicTask:
    crontab = CrontabSchedule.objects.create(minute="30", hour="2", timezone="UTC")
    return PeriodicTask.objects.create(
        name="Nightly optimize", task="optimizer.scheduled_run", crontab=crontab, kwargs='{"target": "all"}'
    )


def test_an_operator_retimes_a_schedule_but_cannot_change_what_it_runs(client, staff, nightly):
    client.force_login(staff("op", OPERATORS))
    schedules = PeriodicTask.objects.count()
    later = CrontabSchedule.objects.create(minute="0", hour="4", timezone="UTC")
    hostile = {"apply": True, "target": "all"}
    response = client.post(
        f"/admin/django_celery_beat/periodictask/{nightly.pk}/change/",
        schedule_form(
            nightly, later, task="scaling.apply_policy", kwargs=json.dumps(hostile), queue="inference", enabled=""
        ),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    nightly.refresh_from_db()
    assert nightly.crontab_id == later.pk and not nightly.enabled  # retimed and switched off
    assert nightly.task == "optimizer.scheduled_run" and json.loads(nightly.kwargs) == {"target": "all"}
    assert nightly.queue is None
    page = client.get(f"/admin/django_celery_beat/periodictask/{nightly.pk}/change/")
    assert page.status_code == 200 and 'name="kwargs"' not in page.content.decode()
    assert client.get("/admin/django_celery_beat/periodictask/add/").status_code == 403
    assert PeriodicTask.objects.count() == schedules


def test_an_administrator_chooses_the_task_and_its_arguments(client, staff, nightly):
    client.force_login(staff("adm", ADMINISTRATORS))
    response = client.post(
        f"/admin/django_celery_beat/periodictask/{nightly.pk}/change/",
        schedule_form(nightly, nightly.crontab, kwargs='{"target": "cache"}'),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    nightly.refresh_from_db()
    assert json.loads(nightly.kwargs) == {"target": "cache"}
    assert client.get("/admin/django_celery_beat/periodictask/add/").status_code == 200
