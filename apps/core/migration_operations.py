"""Migration operations that only touch the database on PostgreSQL.

The model state still records them, so `makemigrations` stays quiet on every backend; SQLite simply
runs without the PostgreSQL-only structure (BRIN indexes, partitions, triggers).
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class PostgresOnlyAddIndex(migrations.AddIndex):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return super().describe() + " (PostgreSQL only)"


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """On PostgreSQL, rerunnable: a build cut short (cancelled, a lost connection, a deadlock) leaves the index
    INVALID under its name, and a plain CREATE INDEX CONCURRENTLY then failed every rerun ("already exists").
    An invalid one is dropped (concurrently) and the index built with IF NOT EXISTS, so a valid one is kept."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
            return
        self._ensure_not_in_transaction(schema_editor)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        quote = schema_editor.quote_name
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [self.index.name])
            row = cursor.fetchone()
            if row is not None and not row[0]:
                cursor.execute(f"DROP INDEX CONCURRENTLY {quote(self.index.name)}")
        sql = str(self.index.create_sql(model, schema_editor, concurrently=True))
        schema_editor.execute(
            sql.replace("CREATE INDEX CONCURRENTLY ", "CREATE INDEX CONCURRENTLY IF NOT EXISTS ", 1), params=None
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class PostgresOnlySQL(migrations.RunSQL):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


def schedule_operation(*tasks: dict) -> migrations.RunPython:
    """Install beat schedules (django-celery-beat rows) an app cannot work without; removed on reverse, but for
    a row an admin disabled.

    Each task: name, task, every, period ("seconds", "minutes", "hours"), and optionally
    expire_seconds and description. Existing rows (an admin's edits) are left as they are. No queue: beat then
    sends each task where CELERY_TASK_ROUTES routes it (a queue on the row overrides the route). A disabled row
    is someone's hold (a prune stopped for a legal hold): deleted on reverse, the next forward made it anew,
    enabled, and the task ran again unnoticed. Kept, it stays disabled both ways; beat sends nothing for it
    meanwhile, so the older code never gets a task it lacks.
    """

    def install(apps, schema_editor):
        IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        for spec in tasks:
            interval, _ = IntervalSchedule.objects.get_or_create(every=spec["every"], period=spec["period"])
            PeriodicTask.objects.get_or_create(
                name=spec["name"],
                defaults={
                    "task": spec["task"],
                    "interval": interval,
                    "expire_seconds": spec.get("expire_seconds", 60),
                    "description": spec.get("description", ""),
                },
            )

    def remove(apps, schema_editor):
        names = [spec["name"] for spec in tasks]
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        PeriodicTask.objects.filter(name__in=names, enabled=True).delete()

    return migrations.RunPython(install, remove)


def seed_operation(app_label: str, model_name: str, key_field: str, rows: dict[str, dict]) -> migrations.RunPython:
    """Create the seeded rows an app ships with (keyed by `key_field`); existing rows are left as edited."""

    def seed(apps, schema_editor):
        model = apps.get_model(app_label, model_name)
        for key, fields in rows.items():
            model.objects.get_or_create(**{key_field: key}, defaults=fields)

    return migrations.RunPython(seed, migrations.RunPython.noop)
