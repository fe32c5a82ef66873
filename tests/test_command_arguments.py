"""Management commands refuse an out-of-range argument with a CommandError naming the option, before
they write anything (no traceback, no half-done work)."""

import math
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.accounts.models import ApiClient
from apps.audit.services import audit_partitions_ensure
from apps.clinical.models import Patient
from apps.optimizer import services as optimizer_services
from apps.optimizer.models import OptimizationRun

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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--patients", "1", "--days", "100000000"], r"--days must be between 1 and 3,650"),
        (["--patients", "1", "--days", "3651"], r"--days must be between 1 and 3,650"),
        # Its oldest patients are 100 years old at --end, born no earlier than registration takes (1880).
        (["--patients", "1", "--end", "0001-01-01"], r"--end must be between 1980-01-03 and now"),
        (["--patients", "1", "--days", "30", "--end", "1979-12-15"], r"--end must be between 1980-01-03 and now"),
        (["--patients", "1", "--end", "9999-12-31"], r"--end must be between .* and now"),
        (["--patients", "1", "--end", (datetime.now(UTC) + timedelta(days=2)).date().isoformat()], r"--end"),
        (["--patients", "1", "--first-index", "-5"], r"--first-index must be between 0 and 9,999,999"),
        (["--patients", "10", "--first-index", "9999995"], r"--first-index plus --patients"),
        (["--patients", "0"], r"--patients must be between 1 and 10,000,000"),
        (["--patients", "10000001"], r"--patients must be between 1 and 10,000,000"),
        (["--patients", "1", "--workers", "1000"], r"--workers must be between 1 and 32"),
        (["--patients", "1", "--rounds-per-day", "100000"], r"--rounds-per-day must be between 1 and 1,440"),
        (["--patients", "1", "--batch-size", "0"], r"--batch-size must be between 1 and 100,000"),
    ],
)
def test_load_synthetic_refuses_arguments_out_of_range(args, message):
    with pytest.raises(CommandError, match=message):
        _run("load_synthetic", *args, "--seed", "7", "--no-progress")
    assert not Patient.objects.exists()


def test_load_synthetic_takes_an_end_in_the_past():
    _run("load_synthetic", "--patients", "2", "--days", "1", "--seed", "7", "--end", "2001-02-03T04:00",
         "--first-index", "9999998", "--no-progress")  # fmt: skip
    patients = list(Patient.objects.order_by("mrn"))
    assert [p.mrn for p in patients] == ["S007-9999998", "S007-9999999"]
    assert all(p.birth_date < datetime(2001, 2, 3).date() for p in patients)


def test_optimize_refuses_an_over_long_deployment_name():
    with pytest.raises(CommandError, match=r"No model deployment has a name that long \(300 characters\)"):
        _run("optimize", "model", "x" * 300, "--inline")
    assert not OptimizationRun.objects.exists()


def test_optimize_refuses_an_unknown_deployment():
    with pytest.raises(CommandError, match=r"No model deployment named 'nowhere'"):
        _run("optimize", "model", "nowhere", "--inline")
    assert not OptimizationRun.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--response-time", "nan"], r"--response-time must be a positive, finite number"),
        (["--response-time", "inf"], r"--response-time must be a positive, finite number"),
        (["--response-time", "1e308"], r"--response-time must be a positive, finite number"),
        (["--response-time", "0"], r"--response-time must be a positive, finite number"),
        (["--cache-hit-rate", "nan"], r"--cache-hit-rate must be above 0 and at most 1"),
        (["--timeout", "nan"], r"--timeout must be a positive, finite number"),
        (["--timeout", "-1"], r"--timeout must be a positive, finite number"),
    ],
)
def test_optimize_refuses_non_finite_targets(args, message):
    with pytest.raises(CommandError, match=message):
        _run("optimize", "caching", *args, "--inline")
    assert not OptimizationRun.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"response_time_ms": math.nan},
        {"response_time_ms": math.inf},
        {"cache_hit_rate": math.nan},
        {"subject": "x" * 121},
    ],
)
def test_optimization_run_create_refuses_non_finite_targets_and_long_subjects(fields):
    with pytest.raises(ValueError):
        optimizer_services.optimization_run_create(target="model", **fields)
    assert not OptimizationRun.objects.exists()
