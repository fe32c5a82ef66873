"""The nightly benchmark schedules get crontab rows of their own, never an Operator's.

Before: nightly_benchmarks_ensure took the first 03:00 crontab of TIME_ZONE there was, an Operator's own among
them; once a hidden service's nightly used it, admin's shared-timing rule made it read-only to that Operator
(403 on its change page), and an edit of it by anyone retimed every plan's nightly with it. Migration 0011
gives the nightlies already on a shared row a copy of it (real PostgreSQL and Django's admin).
"""

import importlib

import pytest
from django.apps import apps as registry
from django.conf import settings
from django.contrib.auth.models import Group
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.accounts.roles import OPERATORS
from apps.benchmarks.models import BenchmarkPlan
from apps.benchmarks.services import NIGHTLY_TASK, nightly_benchmarks_ensure
from apps.services.services import service_create

pytestmark = pytest.mark.django_db

CRONTABS = "/admin/django_celery_beat/crontabschedule/"
EVERY_MINUTE = {"minute": "*", "hour": "*", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*",
                "timezone": "UTC"}  # fmt: skip
migration = importlib.import_module("apps.benchmarks.migrations.0011_nightly_crontabs_of_their_own")


@pytest.fixture
def plans():
    """The FHIR team's plan (its service hidden from other staff) and a radiology one everyone sees."""
    fhir = service_create(name="FHIR R4 API", slug="fhir-api")
    fhir.visible_to.add(Group.objects.create(name="TeamFHIR"))
    radiology = service_create(name="Radiology AI", slug="radiology")
    return [BenchmarkPlan.objects.create(name=f"{service.slug} load", service=service) for service in (fhir, radiology)]


def _at_three() -> CrontabSchedule:
    return CrontabSchedule.objects.create(minute="0", hour="3", day_of_week="*", day_of_month="*",
                                          month_of_year="*", timezone=settings.TIME_ZONE)  # fmt: skip


def _nightly(name: str) -> PeriodicTask:
    return PeriodicTask.objects.get(task=NIGHTLY_TASK, name__endswith=name)


def test_an_operators_own_3am_crontab_is_not_taken_and_stays_theirs_to_retime(client, staff, plans):
    radiology = plans[1]
    mine = _at_three()  # an Operator's timing for the schedules they see, at 03:00 too
    nightly_benchmarks_ensure(plans=BenchmarkPlan.objects.filter(pk=radiology.pk))
    PeriodicTask.objects.filter(pk=_nightly("radiology load").pk).update(crontab=mine)
    nightly_benchmarks_ensure()  # the hidden service's plan scheduled
    hidden = _nightly("fhir-api load").crontab
    assert hidden.pk != mine.pk  # it was `mine`
    assert (hidden.minute, hidden.hour, str(hidden.timezone)) == ("0", "3", settings.TIME_ZONE)
    client.force_login(staff("outsider", OPERATORS))
    assert client.post(f"{CRONTABS}{mine.pk}/change/", {**EVERY_MINUTE, "minute": "10"}).status_code == 302  # 403
    mine.refresh_from_db()
    hidden.refresh_from_db()
    assert (mine.minute, hidden.minute) == ("10", "0")  # the hidden nightly kept its time


def test_each_plans_nightly_has_its_own_crontab(plans):
    _at_three()
    nightly_benchmarks_ensure()
    crontabs = [_nightly(f"{plan.service.slug} load").crontab_id for plan in plans]
    assert len(set(crontabs)) == 2
    assert PeriodicTask.objects.filter(crontab_id__in=crontabs).count() == 2  # none shared with anything else


def test_a_deleted_plans_crontab_goes_with_its_nightly_unless_another_schedule_uses_it(plans):
    fhir, radiology = plans
    nightly_benchmarks_ensure()
    own = _nightly("fhir-api load").crontab_id
    fhir.delete()
    assert not CrontabSchedule.objects.filter(pk=own).exists()  # no unused 03:00 row left per deleted plan
    shared = _nightly("radiology load").crontab
    PeriodicTask.objects.create(name="Operator's report", task="core.heartbeat", crontab=shared)
    radiology.delete()
    assert CrontabSchedule.objects.filter(pk=shared.pk).exists()


def test_the_migration_gives_nightlies_on_a_shared_crontab_their_own(plans):
    nightly_benchmarks_ensure()
    mine, theirs = _at_three(), _at_three()
    mine.minute = "5"
    mine.save()
    report = PeriodicTask.objects.create(name="Operator's report", task="core.heartbeat", crontab=mine)
    PeriodicTask.objects.filter(task=NIGHTLY_TASK, name__endswith="fhir-api load").update(crontab=mine)
    PeriodicTask.objects.filter(task=NIGHTLY_TASK, name__endswith="radiology load").update(crontab=mine)
    alone = PeriodicTask.objects.create(name="Nightly benchmark: by hand", task=NIGHTLY_TASK, crontab=theirs)

    migration.nightlies_own_crontabs(registry, None)

    report.refresh_from_db()
    assert report.crontab_id == mine.pk  # the Operator's row stays theirs
    nightlies = [_nightly("fhir-api load").crontab, _nightly("radiology load").crontab]
    assert len({row.pk for row in nightlies} | {mine.pk}) == 3
    assert all((row.minute, row.hour, row.timezone) == ("5", "3", mine.timezone) for row in nightlies)
    alone.refresh_from_db()
    assert alone.crontab_id == theirs.pk  # already its own: left as it was
    PeriodicTask.objects.filter(pk=report.pk).delete()
    migration.nightlies_own_crontabs(registry, None)  # run again: nothing shared, nothing made
    assert [_nightly("fhir-api load").crontab_id, _nightly("radiology load").crontab_id] == [r.pk for r in nightlies]
