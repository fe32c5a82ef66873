"""Beat's seeded schedules carried queue 'default', which overrides CELERY_TASK_ROUTES: the hourly forecast
(scaling.forecast, 74-134 s and 310 MB) was sent to the short-task worker's `default` queue, not `inference`,
holding one of its two slots each hour. Seeded rows now carry no queue, and migration core 0004 clears the
'default' an existing database's seeded rows still hold where their task routes elsewhere."""

import importlib

import pytest
from django.apps import apps as django_apps
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from controlplane.celery import app

pytestmark = pytest.mark.django_db

FORECAST = "Workload forecasts and replica plans"


def _sent_to(row: PeriodicTask) -> str:
    """The queue beat sends `row`'s task to: django-celery-beat's entry options, routed as apply_async routes."""
    return app.amqp.router.route(dict(ModelEntry(row, app=app).options), row.task)["queue"].name


def _migration():
    return importlib.import_module("apps.core.migrations.0004_seeded_schedules_follow_routes")


def _routed(task: str) -> str:
    return app.amqp.router.route({}, task)["queue"].name


def test_every_seeded_schedule_is_sent_where_its_task_is_routed():
    rows = list(PeriodicTask.objects.all())
    assert FORECAST in {row.name for row in rows}
    sent = {row.name: (_sent_to(row), _routed(row.task)) for row in rows}
    assert {name: pair for name, pair in sent.items() if pair[0] != pair[1]} == {}
    assert sent[FORECAST] == ("inference", "inference")


def test_the_migration_clears_default_on_seeded_rows_routed_elsewhere_only():
    forecast = PeriodicTask.objects.get(name=FORECAST)
    PeriodicTask.objects.filter(pk=forecast.pk).update(queue="default")  # as the old seed left it
    reconcile = PeriodicTask.objects.get(name="Scaling reconcile (apply manifests, emergency alerts)")
    PeriodicTask.objects.filter(pk=reconcile.pk).update(queue="default")  # routed to default anyway
    prune = PeriodicTask.objects.get(name="Prune forecasts older than 30 days")
    PeriodicTask.objects.filter(pk=prune.pk).update(queue="benchmarks")  # an admin's choice
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    own = PeriodicTask.objects.create(
        name="Admin's forecast", task="scaling.forecast", interval=hourly, queue="default"
    )

    _migration().clear_default_queue(django_apps, None)

    assert PeriodicTask.objects.get(pk=forecast.pk).queue is None
    assert _sent_to(PeriodicTask.objects.get(pk=forecast.pk)) == "inference"
    assert PeriodicTask.objects.get(pk=reconcile.pk).queue == "default"
    assert PeriodicTask.objects.get(pk=prune.pk).queue == "benchmarks"
    assert PeriodicTask.objects.get(pk=own.pk).queue == "default"  # not seeded: an admin picked it


def test_the_migration_names_every_schedule_the_product_seeds():
    from django.db.migrations.loader import MigrationLoader

    from apps.core import migration_operations

    seeded = set()
    original = migration_operations.schedule_operation
    for (label, _name), loaded in MigrationLoader(None, ignore_no_migrations=True).disk_migrations.items():
        if not label.startswith(("core",)) and loaded.__module__.startswith("apps."):
            module = importlib.import_module(loaded.__module__)
            if getattr(module, "schedule_operation", None) is original:
                for operation in loaded.operations:
                    code = getattr(operation, "code", None)
                    cells = getattr(code, "__closure__", None) or ()
                    for cell in cells:
                        if isinstance(cell.cell_contents, tuple):
                            seeded |= {spec["name"] for spec in cell.cell_contents if isinstance(spec, dict)}
    assert FORECAST in seeded
    assert seeded == set(_migration().SEEDED_NAMES)
