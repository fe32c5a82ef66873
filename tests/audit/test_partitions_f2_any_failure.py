"""The daily partition task's failure is shown by /readyz and `audit verify` whatever it failed with: a schedule's
kwargs {"months_ahead": 40} made every run fail with a ValueError, yet both said all was well (only a
DatabaseError was recorded). The schedule's form now refuses months_ahead out of the task's bounds."""

from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.audit.selectors import audit_partitions_problem
from apps.audit.services import PARTITION_FAILURE_CACHE_KEY
from apps.audit.tasks import ensure_partitions
from apps.core import selectors as core_selectors

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_partition_failure():
    cache.delete(PARTITION_FAILURE_CACHE_KEY)
    yield
    cache.delete(PARTITION_FAILURE_CACHE_KEY)


def test_a_run_failing_with_any_error_is_shown_by_readyz_and_verify(no_partition_failure):
    result = ensure_partitions.apply(kwargs={"months_ahead": 40})
    assert result.state == "FAILURE"
    problem = audit_partitions_problem()
    assert problem is not None and "ValueError: months_ahead must be between 0 and 36" in problem  # was None
    assert core_selectors.CHECKS["audit_partitions"]() == (core_selectors.DEGRADED, problem)
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "NOTE     the partition task audit.ensure_partitions gave up at" in out.getvalue()

    assert ensure_partitions.apply(kwargs={"months_ahead": 3}).state == "SUCCESS"  # a later run succeeds
    assert audit_partitions_problem() is None


@pytest.mark.parametrize(("months", "saved"), [("40", False), ("-1", False), ('"3"', False), ("36", True)])
def test_the_schedule_form_refuses_months_ahead_out_of_bounds(admin_client, months, saved):
    crontab = CrontabSchedule.objects.create(minute="15", hour="1", timezone="UTC")
    schedule = PeriodicTask.objects.create(name="Partitions f2", task="audit.ensure_partitions", crontab=crontab)
    data = {"name": schedule.name, "regtask": "", "task": schedule.task, "enabled": "on", "description": "",
            "crontab": crontab.pk, "start_time_0": "", "start_time_1": "", "args": "[]",
            "kwargs": f'{{"months_ahead": {months}}}', "expires_0": "", "expires_1": "", "expire_seconds": "",
            "queue": "", "exchange": "", "routing_key": "", "priority": "", "headers": "{}"}  # fmt: skip
    admin_client.raise_request_exception = False
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{schedule.pk}/change/", data)
    if saved:
        assert response.status_code == 302, response.context["adminform"].form.errors
    else:
        assert response.status_code == 200, response.status_code  # was 302: stored
        assert "months_ahead must be a whole number from 0 to 36" in str(response.context["adminform"].form.errors)
