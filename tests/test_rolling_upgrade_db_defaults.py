"""A rolling upgrade (README, deploy: the migrate Job runs while the last release's pods still serve) needs every
NOT NULL column a migration adds after a release to have a database default: the old code inserts rows without
it. Four had only a Python default (benchmarks' stop_reason and worker_host, inference's load_failure, scaling's
max_replicas_ceiling), so the old release's benchmark runs, deployments and scaling policies failed with an
IntegrityError once the new schema was in place."""

import pytest
from django.db import connection, migrations
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

# The release rolling upgrades are checked from (9bb096e, stop 30): each app's last migration there. Columns
# added before it are long released with whatever they had; everything after must keep old pods writing.
RELEASED = {
    "accounts": "0002_scope_permission_benchmark",
    "audit": "0008_sqlite_append_only",
    "benchmarks": "0007_plan_gate_bounds_run_config",
    "caching": "0005_scope_generation_start_and_prune",
    "clinical": "0001_initial",
    "core": "0001_worker_heartbeat_schedule",
    "inference": "0002_max_concurrent_streams",
    "metrics": "0007_alert_rule_last_error",
    "optimizer": "0004_optimizationrun_subject",
    "ratelimits": "0009_prune_hits_schedule",
    "resources": "0009_one_sample_per_publish",
    "scaling": "0008_stress_test_replicas",
    "services": "0005_base_url_credentials_removed",
}


def _columns_old_code_cannot_fill() -> list[str]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    released = set()
    for app, name in RELEASED.items():
        released |= set(loader.graph.forwards_plan((app, name)))
    missing = []
    for key, migration in sorted(loader.disk_migrations.items()):
        if key in released or key[0] not in RELEASED:
            continue
        before = loader.project_state(key, at_end=False)
        for operation in _state_operations(migration.operations):
            if not isinstance(operation, migrations.AddField | migrations.AlterField):
                continue
            field = operation.field
            if field.null or field.many_to_many or field.has_db_default():
                continue
            model_state = before.models.get((key[0], operation.model_name_lower))
            if model_state is None:
                continue  # a model this release creates: no old code writes it
            old = model_state.fields.get(operation.name)
            if isinstance(operation, migrations.AlterField) and (old is None or not old.null):
                continue  # NOT NULL before too: old code already fills it
            if isinstance(operation, migrations.AddField) and field.primary_key:
                continue
            still_needed = _still_lacks_default(loader, key, operation.model_name_lower, operation.name)
            if still_needed:
                missing.append(f"{key[0]}.{key[1]}: {operation.model_name}.{operation.name}")
    return missing


def _state_operations(operations: list) -> list:
    """The operations as the model state sees them: a SeparateDatabaseAndState's state side too (audit 0012 adds
    its column so), where a NOT NULL column without a database default would otherwise go unchecked."""
    found = []
    for operation in operations:
        if isinstance(operation, migrations.SeparateDatabaseAndState):
            found += _state_operations(operation.state_operations)
        else:
            found.append(operation)
    return found


def _still_lacks_default(loader: MigrationLoader, key: tuple[str, str], model: str, field: str) -> bool:
    """Whether the field, as the app's latest migration leaves it, still has no database default (a later
    migration may have given it one)."""
    leaf = next(node for node in loader.graph.leaf_nodes() if node[0] == key[0])
    latest = loader.project_state(leaf).models[(key[0], model)].fields.get(field)
    return latest is not None and not latest.null and not latest.has_db_default()


def test_every_not_null_column_added_since_the_release_has_a_database_default():
    assert _columns_old_code_cannot_fill() == []


@pytest.mark.django_db(transaction=True)
def test_the_last_release_inserts_a_deployment_on_the_new_schema():
    """As an old pod does: the model as the release knew it, on the migrated database."""
    old = MigrationExecutor(connection).loader.project_state(("inference", "0002_max_concurrent_streams")).apps
    deployment = old.get_model("inference", "ModelDeployment").objects.create(
        name="old-pod-deployment", source="path", local_path="/models/x"
    )
    assert deployment.pk
    from apps.inference.models import ModelDeployment

    assert ModelDeployment.objects.get(pk=deployment.pk).load_failure == ""
