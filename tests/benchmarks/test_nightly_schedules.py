"""The nightly benchmark schedules: one per plan, found by task and plan id so a renamed plan keeps its
single schedule (under its new name), and the admin action schedules the selected plans and says what it did."""

import json

import pytest
from django.contrib.messages import get_messages
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.benchmarks.models import BenchmarkPlan
from apps.benchmarks.services import nightly_benchmarks_ensure
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db

REQUESTS = [{"name": "health", "method": "GET", "path": "/healthz", "weight": 1}]


@pytest.fixture
def service():
    return service_ensure(slug="nightly", name="Nightly")[0]


def _plan(service, name: str, **fields) -> BenchmarkPlan:
    return BenchmarkPlan.objects.create(name=name, service=service, requests=REQUESTS, **fields)


def _schedules(plan: BenchmarkPlan) -> list[str]:
    rows = PeriodicTask.objects.filter(task="benchmarks.scheduled_run").order_by("pk")
    return [row.name for row in rows if json.loads(row.kwargs).get("plan_id") == plan.pk]


def test_a_renamed_plan_keeps_its_one_schedule_under_its_new_name(service):
    plan = _plan(service, "ward load")
    assert nightly_benchmarks_ensure().created == ["Nightly benchmark: ward load"]
    schedule = PeriodicTask.objects.get(name="Nightly benchmark: ward load")
    schedule.enabled, schedule.description = True, "edited by an admin"
    schedule.save()

    plan.name = "ward load (renamed)"
    plan.save()
    outcome = nightly_benchmarks_ensure()

    assert outcome.created == [] and outcome.renamed == [
        "Nightly benchmark: ward load -> Nightly benchmark: ward load (renamed)"
    ]
    assert _schedules(plan) == ["Nightly benchmark: ward load (renamed)"]
    assert PeriodicTask.objects.get(pk=schedule.pk).description == "edited by an admin"
    assert nightly_benchmarks_ensure().existing == ["Nightly benchmark: ward load (renamed)"]


def test_the_second_schedule_an_earlier_rename_made_is_removed(service):
    plan = _plan(service, "current name")
    at_three = CrontabSchedule.objects.create(minute="0", hour="3", timezone="UTC")
    first = PeriodicTask.objects.create(name="Nightly benchmark: old name", task="benchmarks.scheduled_run",
                                        crontab=at_three, kwargs=json.dumps({"plan_id": plan.pk}))  # fmt: skip
    PeriodicTask.objects.create(name="Nightly benchmark: current name", task="benchmarks.scheduled_run",
                                crontab=at_three, kwargs=json.dumps({"plan_id": plan.pk}))  # fmt: skip

    outcome = nightly_benchmarks_ensure()

    assert outcome.duplicates_removed == ["Nightly benchmark: current name"]
    assert _schedules(plan) == ["Nightly benchmark: current name"]
    assert PeriodicTask.objects.filter(task="benchmarks.scheduled_run").get().pk == first.pk


def test_a_schedule_an_admin_renamed_is_kept_and_not_doubled(service):
    plan = _plan(service, "ward load")
    other = _plan(service, "ward load 12")
    nightly_benchmarks_ensure()
    PeriodicTask.objects.filter(name="Nightly benchmark: ward load").update(name="Ward load at night")

    outcome = nightly_benchmarks_ensure()

    assert outcome.created == [] and sorted(outcome.existing) == [
        "Nightly benchmark: ward load 12",
        "Ward load at night",
    ]
    assert _schedules(plan) == ["Ward load at night"] and _schedules(other) == ["Nightly benchmark: ward load 12"]


def test_the_admin_action_schedules_the_selected_plans_and_says_what_it_did(admin_client, service):
    chosen, renamed, left = _plan(service, "chosen"), _plan(service, "before"), _plan(service, "left alone")
    disabled = _plan(service, "disabled", enabled=False)
    nightly_benchmarks_ensure(plans=BenchmarkPlan.objects.filter(pk=renamed.pk))
    renamed.name = "after"
    renamed.save()

    def act(*plans: BenchmarkPlan) -> list[str]:
        response = admin_client.post("/admin/benchmarks/benchmarkplan/", {
            "action": "schedule_nightly", "_selected_action": [plan.pk for plan in plans],
        }, follow=True)  # fmt: skip
        assert response.status_code == 200
        return [str(message) for message in get_messages(response.wsgi_request)]

    said = act(chosen, renamed, disabled)
    assert said == [
        "Scheduled nightly (Periodic tasks): Nightly benchmark: chosen.",
        "Renamed after its plan (Periodic tasks): Nightly benchmark: before -> Nightly benchmark: after.",
        "Not scheduled, the plan is disabled: disabled.",
    ]
    assert _schedules(left) == [] and _schedules(disabled) == []
    assert act(chosen) == ["Already scheduled (Periodic tasks): Nightly benchmark: chosen."]
    assert _schedules(chosen) == ["Nightly benchmark: chosen"] and _schedules(renamed) == ["Nightly benchmark: after"]


def test_the_nightly_schedules_run_at_night_on_the_hospitals_clock(service, settings):
    """03:00 and 02:30 of TIME_ZONE (DST included), not of UTC: 03:00 UTC is 22:00 in New York, evening work."""
    from apps.optimizer.services import NIGHTLY_OPTIMIZE, optimizer_schedules_ensure

    settings.TIME_ZONE = "America/New_York"
    plan = _plan(service, "ward load")
    nightly_benchmarks_ensure()
    optimizer_schedules_ensure()
    benchmark = PeriodicTask.objects.get(name="Nightly benchmark: ward load").crontab
    optimize = PeriodicTask.objects.get(name=NIGHTLY_OPTIMIZE).crontab
    assert (benchmark.hour, str(benchmark.timezone)) == ("3", "America/New_York")
    assert (optimize.hour, optimize.minute, str(optimize.timezone)) == ("2", "30", "America/New_York")
    assert _schedules(plan) == ["Nightly benchmark: ward load"]


def test_a_deleted_plan_takes_its_nightly_schedule_with_it(service):
    kept, dropped = _plan(service, "kept load"), _plan(service, "dropped load")
    nightly_benchmarks_ensure()
    dropped_id = dropped.pk
    dropped.delete()
    names = set(PeriodicTask.objects.filter(task="benchmarks.scheduled_run").values_list("name", flat=True))
    assert names == {"Nightly benchmark: kept load"}
    assert _schedules(kept) == ["Nightly benchmark: kept load"]
    assert not [row for row in PeriodicTask.objects.all() if json.loads(row.kwargs).get("plan_id") == dropped_id]
