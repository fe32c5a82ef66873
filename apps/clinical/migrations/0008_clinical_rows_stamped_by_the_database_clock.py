"""`updated_at` from the database's clock on every ORM write on PostgreSQL (models.StampField): save() stamped the
app host's clock (auto_now) while `.update()`, the triggers and the default stamped the database's, so a row
written by a trigger and then saved by a host whose clock ran behind went back in meta.lastUpdated, and a
`_lastUpdated` / `$everything?_since` sync from the last stamp it saw missed it.

The field's class changes on the four tables (no SQL: the column is as it was). The patient's field gets the
others' database default (statement_timestamp()): with one, Django returns the column from an INSERT (RETURNING,
db_returning), so the row in memory holds the stamp the database wrote; a writer that leaves the column out gets
it too. Setting a default rewrites no row. Reversed: the patient's default is dropped.
"""

from django.db import migrations

import apps.clinical.models


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0007_clinical_panels_stamped_by_member_moves_and_deletes"),
    ]

    operations = [
        migrations.AlterField(
            model_name=model_name,
            name="updated_at",
            field=apps.clinical.models.StampField(auto_now=True, db_default=apps.clinical.models.StampNow()),
        )
        for model_name in ("encounter", "medicationrequest", "observation", "patient")
    ]
