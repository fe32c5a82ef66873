"""Scaling 0013: the optimizer's ceiling (0010) came as 100 for every policy, while the releases before it let the
maximum replicas go above 100, so an upgraded policy read "ceiling 100, maximum 150": `manage.py check` warned
(scaling.W001) and its admin page refused every save until someone raised the ceiling. The upgrade starts the
ceiling at the maximum where it is below it, and gives the column a database default for the last release's pods
(they insert policies without it while the upgrade rolls out)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)  # migrates back and forth: outside a test transaction

RELEASED = ("scaling", "0009_forecast_hour")  # the schema before the ceiling


def _migrate(*targets: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(targets))
    return executor.loader.project_state(list(targets)).apps


def _leaves() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def _policy(apps, slug: str, maximum: int):
    service = apps.get_model("services", "Service").objects.create(name=slug, slug=slug)
    return apps.get_model("scaling", "ScalingPolicy").objects.create(service=service, min_replicas=2,
                                                                     max_replicas=maximum)  # fmt: skip


def test_an_upgraded_policy_above_100_replicas_keeps_a_ceiling_at_its_maximum():
    old = _migrate(RELEASED)
    try:
        large, small = _policy(old, "triage-large", 150), _policy(old, "triage-small", 8)
        huge = _policy(old, "triage-huge", 20_000)  # above any bound: raw SQL, or a release with none
        _migrate(*_leaves())
        from apps.scaling.checks import policies_out_of_bounds
        from apps.scaling.models import ScalingPolicy

        assert ScalingPolicy.objects.get(pk=large.pk).max_replicas_ceiling == 150
        assert ScalingPolicy.objects.get(pk=small.pk).max_replicas_ceiling == 100
        assert ScalingPolicy.objects.get(pk=huge.pk).max_replicas_ceiling == 10_000  # the ceiling's own bound
        assert [message.msg.split(":")[0] for message in policies_out_of_bounds()] == [
            "The scaling policy of triage-huge has stored values out of bounds"
        ]  # its maximum, above 10,000, is still named; the others have nothing to fix
    finally:
        _migrate(*_leaves())


def test_the_last_release_inserts_a_policy_on_the_new_schema():
    """As an old pod does: the model as the release knew it, on the migrated database."""
    old = MigrationExecutor(connection).loader.project_state([RELEASED]).apps
    policy = _policy(old, "old-pod", 4)
    from apps.scaling.models import ScalingPolicy

    assert ScalingPolicy.objects.get(pk=policy.pk).max_replicas_ceiling == 100
