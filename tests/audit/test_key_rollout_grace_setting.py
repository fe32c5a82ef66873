"""How long a key rotation's rollout may take is a setting (AUDIT_KEY_ROLLOUT_GRACE_MINUTES, 1..10080, default 60):
a rollout longer than the fixed hour (a stuck Deployment, a drained node, a CronJob on the old Secret) left an OLD
KEY finding for good, which nothing could clear (real PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import pytest

from apps.audit.selectors import audit_chain_verify
from apps.audit.services import PRIMARY_CHAIN, audit_record_batch, chain_key_id
from tests.audit.helpers import ward_app_entry
from tests.helpers import embedded_env, run_python

NEW = "rotated-audit-key-7f3c2a9e41d84b6c9e0f1a2b3c4d5e6f"


def _write(minutes: float) -> None:
    at = datetime(2026, 3, 2, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    audit_record_batch([ward_app_entry(recorded_at=at, resource_id=str(minutes))])


def _rollout_of_61_minutes(settings) -> str:
    """A pod still on the old key appends 61 minutes after the chain's first record sealed with the new one."""
    old = settings.AUDIT_CHAIN_KEY
    _write(0)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW, [old]
    _write(1)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = old, [NEW]
    _write(62)
    settings.AUDIT_CHAIN_KEY, settings.AUDIT_CHAIN_KEY_FALLBACKS = NEW, [old]
    _write(63)
    return old


@pytest.mark.django_db
def test_a_rollout_past_the_default_hour_is_an_old_key_finding(settings):
    assert settings.AUDIT_KEY_ROLLOUT_GRACE_MINUTES == 60
    old = _rollout_of_61_minutes(settings)
    assert audit_chain_verify().older_key_records == [(PRIMARY_CHAIN, 3, chain_key_id(old.encode()))]


@pytest.mark.django_db
def test_a_rollout_inside_a_longer_grace_is_no_finding(settings):
    settings.AUDIT_KEY_ROLLOUT_GRACE_MINUTES = 120
    _rollout_of_61_minutes(settings)
    report = audit_chain_verify()
    assert report.ok, report


DUMP = "import django; django.setup(); from django.conf import settings as s; print(s.AUDIT_KEY_ROLLOUT_GRACE_MINUTES)"


@pytest.mark.parametrize(("value", "expected"), [(None, "60"), ("1", "1"), ("10080", "10080")])
def test_the_grace_setting_reads_its_default_and_bounds(tmp_path, value, expected):
    extra = {} if value is None else {"AUDIT_KEY_ROLLOUT_GRACE_MINUTES": value}
    result = run_python(DUMP, embedded_env(tmp_path, DEBUG="true", **extra))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize("value", ["0", "10081", "an hour"])
def test_a_grace_out_of_bounds_stops_startup_naming_the_setting(tmp_path, value):
    result = run_python(DUMP, embedded_env(tmp_path, DEBUG="true", AUDIT_KEY_ROLLOUT_GRACE_MINUTES=value))
    message = "ImproperlyConfigured: The environment variable AUDIT_KEY_ROLLOUT_GRACE_MINUTES must be"
    assert result.returncode != 0 and message in result.stderr, result.stderr[-500:]
