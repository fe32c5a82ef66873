"""Migrations 0013 and 0014 build their index CONCURRENTLY; a build cut short (cancelled, a lost connection)
leaves it INVALID under its name, and every rerun of `migrate` then failed with `relation ... already exists`.
The rerun drops the invalid index and builds it again. The cut-short build is stood in for by an index made
invalid by hand (the test database's owner is a superuser): cancelling a real build needs a second session
racing the first."""

import pytest
from django.core.management import call_command
from django.db import connection

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="CONCURRENTLY and invalid indexes are PostgreSQL's"),
]


def _valid(index: str) -> bool | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [index])
        row = cursor.fetchone()
        return None if row is None else row[0]


@pytest.mark.parametrize(
    ("before", "index", "table", "columns"),
    [
        ("0012", "alert_started", "metrics_alert", '("started_at" DESC, "id" DESC)'),
        ("0013", "metricpoint_resolution_at", "metrics_metricpoint", '("resolution", "at")'),
    ],
)
def test_a_rerun_after_a_build_cut_short_makes_the_index_valid(before, index, table, columns):
    call_command("migrate", "metrics", before, verbosity=0)
    assert _valid(index) is None
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE INDEX "{index}" ON "{table}" {columns}')
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass(%s)", [index])
    assert _valid(index) is False
    call_command("migrate", "metrics", verbosity=0)
    assert _valid(index) is True
    call_command("migrate", "metrics", verbosity=0)  # run over a finished one: nothing to do
    assert _valid(index) is True
