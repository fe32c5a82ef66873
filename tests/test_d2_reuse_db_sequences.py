"""Under --reuse-db the run reloads the rows the migrations seeded (tests/reuse_db.py) after a flush that restarts
every sequence: a table's sequence must then be past the ids loaded, or the next row created there takes an id
a seeded row holds (seed_demo's crontab schedule: duplicate key). Prove with `--create-db` then `--reuse-db`."""

from __future__ import annotations

import pytest
from django.db import connection
from django_celery_beat.models import CrontabSchedule

pytestmark = pytest.mark.django_db


def test_a_crontab_schedule_can_be_created_beside_the_seeded_ones():
    assert CrontabSchedule.objects.exists(), "the migrations seed beat's schedules"
    created = CrontabSchedule.objects.create(minute="17", hour="3", day_of_week="*", day_of_month="*")
    assert created.pk > max(CrontabSchedule.objects.exclude(pk=created.pk).values_list("pk", flat=True))


def test_every_sequence_is_past_its_table_ids():
    """Each table's id sequence hands out an id above those its table holds."""
    behind = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_serial_sequence(quote_ident(c.relname), a.attname) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'id' AND NOT a.attisdropped"
            " WHERE c.relkind = 'r' AND pg_get_serial_sequence(quote_ident(c.relname), a.attname) IS NOT NULL"
        )
        for table, sequence in cursor.fetchall():
            cursor.execute(
                f"SELECT (SELECT max(id) FROM {connection.ops.quote_name(table)}),"  # noqa: S608 - catalog names
                f" (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {sequence})"
            )
            highest, handed_out = cursor.fetchone()
            if highest is not None and highest > handed_out:
                behind.append(f"{table}: max(id) {highest}, sequence at {handed_out}")
    assert behind == []
