"""The beat schedules' admin listed a hidden service's nightly benchmark (its plan's name, `{"plan_id": N}`) to
Operators and Viewers outside the service's group; an Operator could disable it or "run" it (a load test of the
hidden service sent to the broker), and the crontab's page listed it. Such a schedule is now as absent as a
missing one, and "optimize all" is changed and run only by those from whom no service is hidden (real
PostgreSQL, RabbitMQ and Django's admin)."""

import pytest
from celery.app.task import Task
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.accounts.roles import ADMINISTRATORS, OPERATORS, VIEWERS
from apps.benchmarks.models import BenchmarkPlan
from apps.benchmarks.services import nightly_benchmarks_ensure
from apps.services.services import service_create

pytestmark = pytest.mark.django_db

LIST = "/admin/django_celery_beat/periodictask/"


@pytest.fixture
def hidden_nightly() -> PeriodicTask:
    """The nightly benchmark of a plan whose service only the FHIR team sees, made as the product makes it."""
    fhir = service_create(name="FHIR R4 API", slug="fhir-api")
    fhir.visible_to.add(Group.objects.create(name="TeamFHIR"))
    plan = BenchmarkPlan.objects.create(name="fhir-api load", service=fhir)
    nightly_benchmarks_ensure(plans=BenchmarkPlan.objects.filter(pk=plan.pk))
    return PeriodicTask.objects.get(task="benchmarks.scheduled_run")


@pytest.fixture
def sent(monkeypatch) -> list[str]:
    """The names of the tasks the admin sends (to the real broker: the spy only records them)."""
    names: list[str] = []
    original = Task.apply_async

    def spy(self, *args, **kwargs):
        names.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Task, "apply_async", spy)
    return names


@pytest.mark.parametrize("role", [OPERATORS, VIEWERS])
def test_a_hidden_services_nightly_benchmark_is_absent_from_the_schedules(client, staff, hidden_nightly, role):
    client.force_login(staff("outsider", role))
    listing = client.get(LIST)
    assert listing.status_code == 200
    assert "fhir-api load" not in listing.content.decode()  # was listed, named after the plan
    page = client.get(f"{LIST}{hidden_nightly.pk}/change/")
    assert page.status_code == 302 and "plan_id" not in page.content.decode()  # was 200, with its kwargs
    assert client.get(f"{LIST}{hidden_nightly.pk}/history/").status_code == 302
    crontab = client.get(f"/admin/django_celery_beat/crontabschedule/{hidden_nightly.crontab_id}/change/")
    assert crontab.status_code == 200 and "fhir-api load" not in crontab.content.decode()  # was in its inline


def test_an_operator_cannot_disable_or_run_a_hidden_services_nightly_benchmark(client, staff, hidden_nightly, sent):
    client.force_login(staff("outsider", OPERATORS))
    for action in ("disable_tasks", "toggle_tasks", "run_tasks"):
        client.post(LIST, {"action": action, ACTION_CHECKBOX_NAME: [hidden_nightly.pk]})
    hidden_nightly.refresh_from_db()
    assert hidden_nightly.enabled  # was disabled
    assert sent == []  # was benchmarks.scheduled_run of the hidden plan


def test_the_services_team_and_administrators_still_see_and_run_it(client, staff, hidden_nightly, sent):
    member = staff("member", OPERATORS, "TeamFHIR")
    client.force_login(member)
    assert "fhir-api load" in client.get(LIST).content.decode()
    page = client.get(f"{LIST}{hidden_nightly.pk}/change/")
    assert page.status_code == 200 and "plan_id" in page.content.decode()
    client.post(LIST, {"action": "run_tasks", ACTION_CHECKBOX_NAME: [hidden_nightly.pk]})
    assert sent == ["benchmarks.scheduled_run"]
    client.force_login(staff("adm", ADMINISTRATORS))
    client.post(LIST, {"action": "disable_tasks", ACTION_CHECKBOX_NAME: [hidden_nightly.pk]})
    hidden_nightly.refresh_from_db()
    assert not hidden_nightly.enabled


def test_optimize_all_is_changed_and_run_only_by_those_who_see_every_service(client, staff, hidden_nightly, sent):
    """Its load reaches every service, the hidden ones too: an Operator from whom one is hidden sees the schedule
    (it names none) but cannot switch, retime or run it."""
    crontab = CrontabSchedule.objects.create(minute="30", hour="2", timezone="UTC")
    optimize = PeriodicTask.objects.create(
        name="Nightly optimize all", task="optimizer.scheduled_run", crontab=crontab, kwargs='{"target": "all"}'
    )
    client.force_login(staff("outsider", OPERATORS))
    assert "Nightly optimize all" in client.get(LIST).content.decode()
    page = client.get(f"{LIST}{optimize.pk}/change/")
    assert page.status_code == 200 and 'name="enabled"' not in page.content.decode()  # shown, not editable
    for action in ("disable_tasks", "toggle_tasks", "run_tasks"):
        response = client.post(LIST, {"action": action, ACTION_CHECKBOX_NAME: [optimize.pk]}, follow=True)
        texts = [str(m) for m in get_messages(response.wsgi_request)]
        assert any("acts on every service" in t for t in texts), (action, texts)
    optimize.refresh_from_db()
    assert optimize.enabled and sent == []

    client.force_login(staff("member", OPERATORS, "TeamFHIR"))  # sees every service there is
    client.post(LIST, {"action": "disable_tasks", ACTION_CHECKBOX_NAME: [optimize.pk]})
    optimize.refresh_from_db()
    assert not optimize.enabled
