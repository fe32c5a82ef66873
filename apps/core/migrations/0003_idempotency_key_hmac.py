"""Idempotency keys were stored as the client sent them (often an MRN or a name): each kept row's key becomes its
HMAC, as apps.core.idempotency now stores it, so a retry within the 24 h across the deploy still replays. Rows are
rewritten in place (same client, same expiry); expired ones are deleted instead. Not reversible: the keys cannot be
recovered, and old code would then not find a hashed key (a retry would create anew, as after 24 h)."""

from django.db import migrations, models
from django.db.models.functions import Now

BATCH = 1000


def hash_stored_keys(apps, schema_editor):
    from apps.core.idempotency import key_digest

    IdempotencyKey = apps.get_model("core", "IdempotencyKey")
    rows = IdempotencyKey.objects.using(schema_editor.connection.alias)
    rows.filter(expires_at__lte=Now()).delete()
    last = 0
    while True:
        batch = list(rows.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not batch:
            return
        for row in batch:
            row.key = key_digest(row.client, row.key)
        IdempotencyKey.objects.using(schema_editor.connection.alias).bulk_update(batch, ["key"])
        last = batch[-1].pk


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_idempotency_key"),
    ]

    operations = [
        migrations.AlterField(
            model_name="idempotencykey",
            name="key",
            field=models.CharField(
                help_text="HMAC-SHA256 (hex) of the client and its Idempotency-Key, never the key as sent.",
                max_length=255,
            ),
        ),
        migrations.RunPython(hash_stored_keys, migrations.RunPython.noop),
    ]
