"""A beat timing (crontab, interval) is one row shared by every schedule using it: an Operator from whom a service
is hidden saved the nightly crontab (or the interval) and so retimed the hidden service's nightly load test and
"optimize all" with it, though the timing's page listed neither (the inline shows only what they see). Such a
timing is now theirs to read only, and not to delete; an Administrator still saves it, and a timing used only by
schedules they may change is theirs to change as before (real PostgreSQL and Django's admin)."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.accounts.roles import ADMINISTRATORS, OPERATORS
from apps.benchmarks.models import BenchmarkPlan
from apps.benchmarks.services import nightly_benchmarks_ensure
from apps.optimizer.services import NIGHTLY_OPTIMIZE, optimizer_schedules_ensure
from apps.services.services import service_create
from tests.accounts.support import schedule_form

pytestmark = pytest.mark.django_db

CRONTABS = "/admin/django_celery_beat/crontabschedule/"
SCHEDULES = "/admin/django_celery_beat/periodictask/"
EVERY_MINUTE = {"minute": "*", "hour": "*", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*",
                "timezone": "UTC"}  # fmt: skip


@pytest.fixture
def services():
    """The FHIR team's service (hidden from other staff) and the radiology one everyone sees, each with a nightly
    load test as the product makes them (one 03:00 crontab for both), and "optimize all" (02:30)."""
    fhir = service_create(name="FHIR R4 API", slug="fhir-api")
    fhir.visible_to.add(Group.objects.create(name="TeamFHIR"))
    radiology = service_create(name="Radiology AI", slug="radiology")
    for service in (fhir, radiology):
        BenchmarkPlan.objects.create(name=f"{service.slug} load", service=service)
    nightly_benchmarks_ensure()
    optimizer_schedules_ensure()
    return fhir, radiology


def _nightly_crontab() -> CrontabSchedule:
    return PeriodicTask.objects.get(name__endswith="fhir-api load").crontab


def _optimize_all_crontab() -> CrontabSchedule:
    return PeriodicTask.objects.get(name=NIGHTLY_OPTIMIZE).crontab


def _when(crontab: CrontabSchedule) -> tuple[str, str]:
    crontab.refresh_from_db()
    return crontab.minute, crontab.hour


@pytest.mark.parametrize("shared", [_nightly_crontab, _optimize_all_crontab])
def test_an_operator_cannot_retime_a_crontab_shared_with_schedules_they_may_not_change(client, staff, services,
                                                                                        shared):  # fmt: skip
    crontab = shared()
    before = _when(crontab)
    client.force_login(staff("outsider", OPERATORS))
    response = client.post(f"{CRONTABS}{crontab.pk}/change/", EVERY_MINUTE)
    assert response.status_code == 403  # was 302: the hidden load test (or optimize all) ran every minute
    assert _when(crontab) == before
    page = client.get(f"{CRONTABS}{crontab.pk}/change/")
    assert page.status_code == 200 and 'name="minute"' not in page.content.decode()  # shown, read only
    assert any("Read only" in str(m) for m in get_messages(page.wsgi_request))
    assert "fhir-api load" not in page.content.decode()  # still not named


def test_an_administrator_and_the_services_team_still_retime_it(client, staff, services):
    nightly, optimize = _nightly_crontab(), _optimize_all_crontab()
    client.force_login(staff("member", OPERATORS, "TeamFHIR"))  # sees every service there is
    assert client.post(f"{CRONTABS}{optimize.pk}/change/", {**EVERY_MINUTE, "minute": "15"}).status_code == 302
    assert _when(optimize) == ("15", "*")
    client.force_login(staff("adm", ADMINISTRATORS))
    assert client.post(f"{CRONTABS}{nightly.pk}/change/", {**EVERY_MINUTE, "minute": "5"}).status_code == 302
    assert _when(nightly) == ("5", "*")


def test_an_operator_still_retimes_a_timing_only_their_schedules_use(client, staff, services):
    mine = CrontabSchedule.objects.create(minute="0", hour="4", timezone="UTC")
    PeriodicTask.objects.filter(name__endswith="radiology load").update(crontab=mine)
    client.force_login(staff("outsider", OPERATORS))
    assert client.post(f"{CRONTABS}{mine.pk}/change/", {**EVERY_MINUTE, "minute": "10"}).status_code == 302
    assert _when(mine) == ("10", "*")


def test_an_interval_shared_with_a_hidden_services_schedule_is_read_only_too(client, staff, services):
    every = IntervalSchedule.objects.create(every=6, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.filter(name__endswith="load").update(crontab=None, interval=every)
    client.force_login(staff("outsider", OPERATORS))
    url = f"/admin/django_celery_beat/intervalschedule/{every.pk}/change/"
    assert client.post(url, {"every": "1", "period": "minutes"}).status_code == 403  # was 302
    every.refresh_from_db()
    assert (every.every, every.period) == (6, IntervalSchedule.HOURS)


def test_deleting_it_is_refused_to_whom_a_schedule_using_it_is_hidden(client, staff, services):
    """Deleting a timing deletes the schedules using it (CASCADE): the hidden load test went with it."""
    crontab = _nightly_crontab()
    outsider = staff("outsider", OPERATORS)
    outsider.user_permissions.add(*Permission.objects.filter(
        codename__in=["delete_crontabschedule", "delete_periodictask"]))  # fmt: skip
    client.force_login(outsider)
    assert client.post(f"{CRONTABS}{crontab.pk}/delete/", {"post": "yes"}).status_code == 403  # was 302
    client.post(CRONTABS, {"action": "delete_selected", ACTION_CHECKBOX_NAME: [crontab.pk], "post": "yes"})
    assert CrontabSchedule.objects.filter(pk=crontab.pk).exists()
    assert PeriodicTask.objects.filter(name__endswith="fhir-api load").exists()


def test_a_schedule_may_choose_a_shared_crontab_but_not_change_it(client, staff, services):
    """The schedule's form selects a timing (fine: the row is not changed); changing the row's fields goes
    through the timing's page (the form's pencil link), refused. A new schedule reusing the row likewise."""
    crontab = _nightly_crontab()
    before = _when(crontab)
    client.force_login(staff("outsider", OPERATORS))
    radiology = PeriodicTask.objects.get(name__endswith="radiology load")
    own = CrontabSchedule.objects.create(minute="0", hour="4", timezone="UTC")
    radiology.crontab = own
    radiology.save()
    retimed = client.post(f"{SCHEDULES}{radiology.pk}/change/",
                          {"enabled": "on", "description": "", "start_time_0": "", "start_time_1": "",
                           "crontab": crontab.pk})  # fmt: skip
    assert retimed.status_code == 302
    radiology.refresh_from_db()
    assert radiology.crontab_id == crontab.pk and _when(crontab) == before
    popup = client.post(f"{CRONTABS}{crontab.pk}/change/?_popup=1&_to_field=id", {**EVERY_MINUTE, "_popup": "1"})
    assert popup.status_code == 403 and _when(crontab) == before
    assert client.get(f"{SCHEDULES}add/").status_code == 403  # Operators add no schedule

    client.force_login(staff("adm", ADMINISTRATORS))
    added = client.post(f"{SCHEDULES}add/", schedule_form(radiology, crontab, name="Radiology again", task="",
                                                          regtask="benchmarks.scheduled_run",
                                                          kwargs=radiology.kwargs))  # fmt: skip
    assert added.status_code == 302, added.context and added.context["adminform"].form.errors
    assert PeriodicTask.objects.get(name="Radiology again").crontab_id == crontab.pk and _when(crontab) == before


def test_a_crontab_of_an_operator_is_not_reused_by_a_hidden_services_new_nightly(client, staff):
    """nightly_benchmarks_ensure reused any 03:00 crontab, an Operator's own too: once the hidden service's
    nightly used it, it was read-only to them (403). The nightly gets a crontab of its own now
    (tests/benchmarks/test_d_nightly_crontab_of_its_own.py)."""
    client.force_login(staff("outsider", OPERATORS))
    assert client.post(f"{CRONTABS}add/", {**EVERY_MINUTE, "minute": "0", "hour": "3"}).status_code == 302
    theirs = CrontabSchedule.objects.get(minute="0", hour="3")
    fhir = service_create(name="FHIR R4 API", slug="fhir-api")
    fhir.visible_to.add(Group.objects.create(name="TeamFHIR"))
    BenchmarkPlan.objects.create(name="fhir-api load", service=fhir)
    nightly_benchmarks_ensure()
    assert _nightly_crontab().pk != theirs.pk
    assert client.post(f"{CRONTABS}{theirs.pk}/change/", {**EVERY_MINUTE, "hour": "4"}).status_code == 302
    assert _when(theirs) == ("*", "4") and _when(_nightly_crontab()) == ("0", "3")
