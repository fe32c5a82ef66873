"""Management commands refuse an out-of-range argument with a CommandError naming the option, before
they write anything (no traceback, no half-done work)."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.services import audit_partitions_ensure

pytestmark = pytest.mark.django_db


def _run(*args: str) -> None:
    call_command(*args, stdout=StringIO(), stderr=StringIO())


def _audit_tables() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname LIKE %s", ["audit_auditevent_y%"])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("months", ["37", "-5"])
def test_audit_partitions_refuses_months_ahead_out_of_range(months):
    tables = _audit_tables()
    with pytest.raises(CommandError, match=r"--months-ahead must be between 0 and 36"):
        _run("audit", "partitions", "--months-ahead", months)
    assert _audit_tables() == tables


def test_audit_partitions_service_refuses_months_ahead_out_of_range():
    """The schedule's task calls the service directly, so the bound holds there too."""
    tables = _audit_tables()
    for months in (-1, 37):
        with pytest.raises(ValueError, match="months_ahead"):
            audit_partitions_ensure(months_ahead=months)
    assert _audit_tables() == tables
