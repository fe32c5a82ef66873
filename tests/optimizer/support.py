"""Helpers shared by the optimizer's tests: `manage.py optimize` as an admin runs it, and the catalog reads
of the index advisor's tests (on the test database, for tests marked django_db(transaction=True))."""

from __future__ import annotations

from io import StringIO

import psycopg
from django.core.management import call_command
from django.db import connection

from apps.optimizer.models import OptimizationRun

INDEX = "clinical_obs_patient_cat"  # (patient, category, effective_at DESC) on clinical_observation


def optimize(*args: str) -> tuple[OptimizationRun, str, int]:
    """`manage.py optimize ...` as an admin would run it: the run, its output and its exit code."""
    out, err = StringIO(), StringIO()
    try:
        call_command("optimize", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return OptimizationRun.objects.latest("started_at"), out.getvalue() + err.getvalue(), code


def sql(statement: str, params=None) -> list[tuple]:
    """`statement` on the test's connection: its rows, if it returns any."""
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def index_state(name: str) -> tuple | None:
    """(indisvalid,) of the index `name`, None where there is none."""
    rows = sql("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
    return rows[0] if rows else None


def connect() -> psycopg.Connection:
    """A session of its own on the test database (another client), autocommit."""
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"], autocommit=True
    )
