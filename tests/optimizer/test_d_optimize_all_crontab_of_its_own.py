"""The seeded "optimize all" schedule gets a crontab row of its own, never an Operator's.

Before: optimizer_schedules_ensure took any 02:30 crontab of TIME_ZONE (get_or_create), an Operator's own among
them; "optimize all" runs for every service, hidden ones too, so admin's shared-timing rule made the Operator's
row read-only to them (403 on its change page), and a retime of it by anyone retimed both. Migration 0006 gives
"optimize all" on a shared row a copy of it (real PostgreSQL and Django's admin), as benchmarks 0011 did for the
nightly benchmarks.
"""

import importlib

import pytest
from django.apps import apps as registry
from django.conf import settings
from django.contrib.auth.models import Group
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.accounts.roles import OPERATORS
from apps.optimizer.services import NIGHTLY_OPTIMIZE, optimizer_schedules_ensure
from apps.services.services import service_create

pytestmark = pytest.mark.django_db

CRONTABS = "/admin/django_celery_beat/crontabschedule/"
EVERY_MINUTE = {"minute": "*", "hour": "*", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*",
                "timezone": "UTC"}  # fmt: skip
migration = importlib.import_module("apps.optimizer.migrations.0006_optimize_all_crontab_of_its_own")


@pytest.fixture
def hidden_service():
    """The FHIR team's service, hidden from other staff: "optimize all" covers it too."""
    fhir = service_create(name="FHIR R4 API", slug="fhir-api")
    fhir.visible_to.add(Group.objects.create(name="TeamFHIR"))
    return fhir


def _at_half_past_two() -> CrontabSchedule:
    return CrontabSchedule.objects.create(minute="30", hour="2", day_of_week="*", day_of_month="*",
                                          month_of_year="*", timezone=settings.TIME_ZONE)  # fmt: skip


def _optimize_all() -> PeriodicTask:
    return PeriodicTask.objects.get(name=NIGHTLY_OPTIMIZE)


def test_an_operators_own_half_past_two_crontab_is_not_taken_and_stays_theirs_to_retime(client, staff,
                                                                                      hidden_service):  # fmt: skip
    mine = _at_half_past_two()  # an Operator's timing for the schedules they see, at 02:30 too
    PeriodicTask.objects.create(name="Operator's report", task="core.heartbeat", crontab=mine)
    assert optimizer_schedules_ensure() == [NIGHTLY_OPTIMIZE]
    seeded = _optimize_all().crontab
    assert seeded.pk != mine.pk  # it was `mine`
    assert (seeded.minute, seeded.hour, str(seeded.timezone)) == ("30", "2", settings.TIME_ZONE)
    client.force_login(staff("outsider", OPERATORS))
    assert client.post(f"{CRONTABS}{mine.pk}/change/", {**EVERY_MINUTE, "minute": "10"}).status_code == 302  # 403
    mine.refresh_from_db()
    seeded.refresh_from_db()
    assert (mine.minute, seeded.minute) == ("10", "30")  # "optimize all" kept its time


def test_ensuring_again_makes_no_crontab_and_keeps_an_admins_retime():
    """The old get_or_create made (or found) a 02:30 row on every call, the schedule there or not."""
    optimizer_schedules_ensure()
    crontab = _optimize_all().crontab
    crontab.hour = "4"
    crontab.save()
    before = CrontabSchedule.objects.count()
    assert optimizer_schedules_ensure() == []
    assert CrontabSchedule.objects.count() == before
    assert _optimize_all().crontab_id == crontab.pk
    assert PeriodicTask.objects.filter(crontab=crontab).count() == 1


def test_the_migration_gives_optimize_all_on_a_shared_crontab_its_own():
    optimizer_schedules_ensure()
    mine = _at_half_past_two()
    mine.minute = "35"
    mine.save()
    report = PeriodicTask.objects.create(name="Operator's report", task="core.heartbeat", crontab=mine)
    PeriodicTask.objects.filter(name=NIGHTLY_OPTIMIZE).update(crontab=mine)  # as get_or_create left it

    migration.optimize_all_own_crontab(registry, None)

    report.refresh_from_db()
    assert report.crontab_id == mine.pk  # the Operator's row stays theirs
    own = _optimize_all().crontab
    assert own.pk != mine.pk
    assert (own.minute, own.hour, own.timezone) == ("35", "2", mine.timezone)
    count = CrontabSchedule.objects.count()
    migration.optimize_all_own_crontab(registry, None)  # run again: already its own, nothing made
    assert _optimize_all().crontab_id == own.pk and CrontabSchedule.objects.count() == count


def test_the_migration_leaves_optimize_all_alone_on_a_crontab_of_its_own_or_with_none():
    migration.optimize_all_own_crontab(registry, None)  # no schedule: nothing to do
    assert not PeriodicTask.objects.filter(name=NIGHTLY_OPTIMIZE).exists()
    optimizer_schedules_ensure()
    own = _optimize_all().crontab_id
    count = CrontabSchedule.objects.count()
    migration.optimize_all_own_crontab(registry, None)
    assert _optimize_all().crontab_id == own and CrontabSchedule.objects.count() == count
