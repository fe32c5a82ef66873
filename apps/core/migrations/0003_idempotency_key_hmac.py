"""Idempotency keys were stored as the client sent them (often an MRN or a name): each kept row's key becomes its
HMAC, as apps.core.idempotency now stores it, so a retry within the 24 h across the deploy still replays. Rows are
rewritten in place (same client, same expiry); expired ones are deleted instead. Backwards, every row is deleted: the
keys cannot be recovered, and a hashed row kept through the rollback would be hashed again by the next forward run
(a retry after it created the resource a second time); old code then treats a retry as new, as after 24 h."""

import logging

from django.db import migrations, models
from django.db.models.functions import Now

BATCH = 1000
logger = logging.getLogger("apps.core.migrations")


def _say(line: str) -> None:
    logger.warning(line)
    print(f"\n  {line}")  # noqa: T201 - `migrate`'s operator should see it whatever the log level


def hash_stored_keys(apps, schema_editor):
    from apps.core.idempotency import key_digest

    IdempotencyKey = apps.get_model("core", "IdempotencyKey")
    rows = IdempotencyKey.objects.using(schema_editor.connection.alias)
    expired, _ = rows.filter(expires_at__lte=Now()).delete()
    last, hashed = 0, 0
    while True:
        batch = list(rows.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not batch:
            if hashed or expired:
                _say(f"core 0003: {hashed} Idempotency-Key(s) kept as their HMAC, {expired} expired one(s) deleted")
            return
        for row in batch:
            row.key = key_digest(row.client, row.key)
        IdempotencyKey.objects.using(schema_editor.connection.alias).bulk_update(batch, ["key"])
        last, hashed = batch[-1].pk, hashed + len(batch)


def forget_hashed_keys(apps, schema_editor):
    IdempotencyKey = apps.get_model("core", "IdempotencyKey")
    deleted, _ = IdempotencyKey.objects.using(schema_editor.connection.alias).all().delete()
    if deleted:
        _say(f"core 0003 reversed: {deleted} Idempotency-Key(s) deleted (a retry is then new, as after 24 h)")


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
        migrations.RunPython(hash_stored_keys, forget_hashed_keys),
    ]
