"""`updated_at` on Encounter, Observation and MedicationRequest: FHIR's meta.lastUpdated and versionId, `_lastUpdated`
and `$everything?_since`.

The database default (`STATEMENT_TIMESTAMP()`, Django's Now()) is what the loader's COPY and an older release's
INSERTs (rolling upgrade) leave the column to. It is STABLE, not volatile, so PostgreSQL (11+) adds the column without
rewriting the table: it stores the value once as the column's missing value (pg_attribute.attmissingval), which every
existing row reads (tests/clinical/test_b_last_updated_writes.py checks the statement on a table with rows). Existing
rows thus read as updated when the migration ran. Reversed, the columns are dropped.
"""

from django.db import migrations, models
from django.db.models.functions import Now


class Migration(migrations.Migration):
    dependencies = [
        ("clinical", "0003_normalize_identifier_system_percent_encoding"),
    ]

    operations = [
        migrations.AddField(
            model_name=model_name,
            name="updated_at",
            field=models.DateTimeField(auto_now=True, db_default=Now()),
        )
        for model_name in ("encounter", "medicationrequest", "observation")
    ]
