"""Management commands refuse an out-of-range argument with a CommandError naming the option, before
they write anything (no traceback, no half-done work)."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.accounts.models import ApiClient
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


@pytest.mark.parametrize("days", ["99999999", "3651", "0", "-3"])
def test_create_api_client_refuses_expires_days_out_of_range(days):
    with pytest.raises(CommandError, match=r"--expires-days must be between 1 and 3650"):
        _run("create_api_client", "x2", "--scopes", "patient:read", "--expires-days", days)
    assert not ApiClient.objects.filter(name="x2").exists()


def test_create_api_client_takes_the_longest_expiry():
    _run("create_api_client", "ten-years", "--scopes", "patient:read", "--expires-days", "3650")
    client = ApiClient.objects.get(name="ten-years")
    assert client.expires_at.date() == (datetime.now(UTC) + timedelta(days=3650)).date()


def test_revoke_api_client_answers_an_over_long_name_without_a_traceback():
    with pytest.raises(CommandError, match="No API client named"):
        _run("revoke_api_client", "x" * 300)
