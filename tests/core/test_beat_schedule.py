"""Schedules live in the database: an edit in admin is what beat runs next."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.forms.models import model_to_dict
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from controlplane.celery import app as celery_app

pytestmark = pytest.mark.django_db


def test_migrations_install_the_worker_heartbeat_schedule():
    task = PeriodicTask.objects.get(name="Worker heartbeat")
    assert task.task == "core.heartbeat"
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (10, "seconds")


def _form_data(task: PeriodicTask, **changes) -> dict:
    data = {key: value for key, value in model_to_dict(task).items() if value is not None}
    data.update(changes)
    return data


def test_interval_edited_in_admin_reaches_the_beat_scheduler(client, admin_user, rf):
    task = PeriodicTask.objects.get(name="Worker heartbeat")
    slower = IntervalSchedule.objects.create(every=45, period=IntervalSchedule.SECONDS)
    client.force_login(admin_user)
    # The admin's own form, so the test posts exactly the fields admins see.
    request = rf.get("/")
    request.user = admin_user
    form_class = admin.site._registry[PeriodicTask].get_form(request, task)
    data = _form_data(task, interval=slower.pk)
    data = {key: value for key, value in data.items() if key in form_class.base_fields}

    response = client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    entry = scheduler.all_as_schedule()["Worker heartbeat"]
    assert entry.schedule.run_every == timedelta(seconds=45)


def test_disabling_in_admin_removes_the_entry_from_beat(client, admin_user):
    task = PeriodicTask.objects.get(name="Worker heartbeat")
    client.force_login(admin_user)
    response = client.post(
        "/admin/django_celery_beat/periodictask/",
        {"action": "disable_tasks", "_selected_action": [task.pk]},
    )
    assert response.status_code == 302
    scheduler = DatabaseScheduler(app=celery_app, lazy=True)
    assert "Worker heartbeat" not in scheduler.all_as_schedule()


def test_tasks_are_routed_to_their_queues():
    router = celery_app.amqp.router
    assert router.route({}, "core.heartbeat")["queue"].name == "default"
    assert router.route({}, "benchmarks.run_plan")["queue"].name == "benchmarks"
    assert router.route({}, "inference.optimize")["queue"].name == "inference"


def test_every_installed_schedule_names_a_registered_task():
    celery_app.loader.import_default_modules()
    scheduled = dict(PeriodicTask.objects.values_list("name", "task"))
    assert {"Resource monitor", "Adapt rate limits to load", "Evaluate alert rules", "Collect metric series",
            "Downsample metrics", "Prune expired L3 cache entries"} <= set(scheduled)  # fmt: skip
    missing = {name: task for name, task in scheduled.items() if task not in celery_app.tasks}
    assert missing == {}
