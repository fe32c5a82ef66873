"""The audit tables. On PostgreSQL the event table is range-partitioned by month (with a default
partition so no insert can fail for want of one) and a trigger refuses UPDATE and DELETE."""

from django.db import migrations, models

GENESIS_HASH = "0" * 64


def create_event_table(apps, schema_editor):
    model = apps.get_model("audit", "AuditEvent")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.create_model(model)
        return
    table = model._meta.db_table
    sql, params = schema_editor.table_sql(model)
    # A partitioned table's primary key must contain the partition key.
    sql = sql.replace(" PRIMARY KEY", "", 1)
    sql = sql[: sql.rindex(")")] + ', PRIMARY KEY ("id", "recorded_at")) PARTITION BY RANGE ("recorded_at")'
    schema_editor.execute(sql, params or None)
    schema_editor.execute(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT')
    for index in model._meta.indexes:
        schema_editor.add_index(model, index)
    schema_editor.execute(
        "CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$"
    )
    schema_editor.execute(
        f'CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON "{table}" '
        "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
    )


def drop_event_table(apps, schema_editor):
    model = apps.get_model("audit", "AuditEvent")
    schema_editor.delete_model(model)
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")


def create_chain_head(apps, schema_editor):
    from apps.audit.services import head_seal

    apps.get_model("audit", "AuditChainHead").objects.get_or_create(
        name="primary", defaults={"seq": 0, "last_hash": GENESIS_HASH, "seal": head_seal("primary", 0, GENESIS_HASH)}
    )


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=120, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("seq", models.BigIntegerField(default=0)),
                ("last_hash", models.CharField(max_length=64)),
                ("seal", models.CharField(blank=True, max_length=64)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name": "audit chain head",
            },
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "chain_id",
                            models.BigIntegerField(
                                default=1, help_text="The hash chain (AuditChainHead) this record is in."
                            ),
                        ),
                        (
                            "seq",
                            models.BigIntegerField(help_text="Position in its hash chain; gaps mean deleted records."),
                        ),
                        ("recorded_at", models.DateTimeField()),
                        (
                            "actor_type",
                            models.CharField(
                                choices=[
                                    ("client", "API client"),
                                    ("user", "User"),
                                    ("system", "The control plane itself"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("actor_id", models.BigIntegerField(null=True)),
                        ("actor_name", models.CharField(max_length=150)),
                        (
                            "action",
                            models.CharField(
                                choices=[
                                    ("read", "Read"),
                                    ("search", "Search"),
                                    ("create", "Create"),
                                    ("update", "Update"),
                                    ("delete", "Delete"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("resource_type", models.CharField(max_length=40)),
                        ("resource_id", models.CharField(blank=True, max_length=64)),
                        (
                            "patient_id",
                            models.BigIntegerField(help_text="Internal patient id, never the MRN.", null=True),
                        ),
                        (
                            "outcome",
                            models.CharField(
                                choices=[
                                    ("success", "Success"),
                                    ("denied", "Denied"),
                                    ("not_found", "Not found"),
                                    ("error", "Error"),
                                ],
                                default="success",
                                max_length=16,
                            ),
                        ),
                        ("source_ip", models.GenericIPAddressField(null=True)),
                        ("purpose_of_use", models.CharField(default="TREAT", max_length=32)),
                        ("request_id", models.CharField(blank=True, max_length=64)),
                        (
                            "query_digest",
                            models.CharField(blank=True, help_text="Keyed digest of search parameters.", max_length=64),
                        ),
                        ("result_count", models.IntegerField(null=True)),
                        ("served_from_cache", models.BooleanField(default=False)),
                        ("prev_hash", models.CharField(max_length=64)),
                        ("hash", models.CharField(max_length=64)),
                    ],
                    options={
                        "ordering": ["-id"],
                        "indexes": [
                            models.Index(fields=["chain_id", "seq"], name="audit_event_chain_seq"),
                            models.Index(fields=["patient_id", "-recorded_at"], name="audit_event_patient"),
                            models.Index(fields=["actor_type", "actor_id", "-recorded_at"], name="audit_event_actor"),
                            models.Index(fields=["-recorded_at"], name="audit_event_recorded"),
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        # After the state exists, so the function sees the model.
        migrations.RunPython(create_event_table, drop_event_table),
        migrations.RunPython(create_chain_head, migrations.RunPython.noop),
    ]
