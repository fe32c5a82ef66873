"""Migration 0009: the publishes two monitor runs at once recorded twice lose their copies, so the unique
constraint one_sample_per_publish can be made (the same on PostgreSQL and the embedded SQLite)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)  # migrates back and forth: outside a test transaction

BEFORE, AFTER = ("resources", "0008_shared_server_recommendations"), ("resources", "0009_one_sample_per_publish")


def _migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def test_duplicate_publishes_keep_their_first_sample_and_the_rest_stay():
    ResourceSample = _migrate(BEFORE).get_model("resources", "ResourceSample")
    try:
        measured = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        figures = {"cpu_pct": 50.0, "memory_pct": 40.0, "disk_pct": 10.0}
        first = ResourceSample.objects.create(host="api-a", measured_at=measured, **figures)
        for _ in range(2):  # the same publish, recorded again by runs at once
            ResourceSample.objects.create(host="api-a", measured_at=measured, **figures)
        other_publish = ResourceSample.objects.create(host="api-a", measured_at=measured + timedelta(seconds=5),
                                                      **figures)  # fmt: skip
        other_pod = ResourceSample.objects.create(host="api-b", measured_at=measured, **figures)
        own = [ResourceSample.objects.create(host="worker-a", **figures) for _ in range(2)]  # never published

        ResourceSample = _migrate(AFTER).get_model("resources", "ResourceSample")
        kept = set(ResourceSample.objects.values_list("pk", flat=True))
        assert kept == {first.pk, other_publish.pk, other_pod.pk, *(sample.pk for sample in own)}
    finally:
        _migrate(AFTER)
