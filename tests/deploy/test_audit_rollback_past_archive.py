"""A rollback to the release before audit 0009 (the archive records) on a trail that holds records.

Reversing 0009 refused whenever the trail held any record, though what it drops is the archive table: every
hospital's `migrate audit 0008_sqlite_append_only` failed, after 0012-0010 had been reversed (each commits on its
own), leaving the app at 0009. It refuses now only over archive records, which verify resumes the chains from."""

import os

import pytest

from tests.helpers import manage, run_python

pytestmark = pytest.mark.slow  # processes of their own, on a throwaway database

RELEASE_BEFORE_ARCHIVE = "0008_sqlite_append_only"
WRITE_RECORDS = """
import django; django.setup()
from django.utils import timezone
from apps.audit.services import AuditEntry, audit_record_batch
audit_record_batch([AuditEntry(actor_type="client", actor_id=None, actor_name="rollback", action="read",
                               resource_type="Patient", resource_id=str(n), patient_id=n) for n in range(1, 6)])
"""
ARCHIVE_RECORD = """
import django; django.setup()
from django.utils import timezone
from apps.audit.models import AuditArchive
now = timezone.now()
AuditArchive.objects.create(partition="audit_auditevent_y2020m01", range_start=now, range_end=now, file_name="f",
                            sha256="0" * 64, row_count=1, archived_by="test", archived_at=now, seal="s")
"""
COUNTS = """
import django; django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM audit_auditevent")
    events = cursor.fetchone()[0]
    cursor.execute("SELECT to_regclass('audit_auditarchive') IS NOT NULL")
    archives = "no table"
    if cursor.fetchone()[0]:
        cursor.execute("SELECT count(*) FROM audit_auditarchive")
        archives = cursor.fetchone()[0]
print(events, archives)
"""


@pytest.fixture
def env(throwaway_database) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": throwaway_database}
    migrated = manage("migrate", "-v0", env=env, timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    written = run_python(WRITE_RECORDS, env)
    assert written.returncode == 0, written.stderr[-3000:]
    return env


def _counts(env: dict[str, str]) -> str:
    counted = run_python(COUNTS, env)
    assert counted.returncode == 0, counted.stderr[-3000:]
    return counted.stdout.strip()


def test_audit_rolls_back_past_the_archive_and_forwards_with_its_records(env):
    back = manage("migrate", "audit", RELEASE_BEFORE_ARCHIVE, "-v1", env=env, timeout=300)
    assert back.returncode == 0, back.stderr[-3000:]
    assert "Unapplying audit.0009_archive... OK" in back.stdout
    assert _counts(env) == "5 no table"  # the release before it had none
    forward = manage("migrate", "-v0", env=env, timeout=300)
    assert forward.returncode == 0, forward.stderr[-3000:]
    assert _counts(env) == "5 0"
    verified = manage("audit", "verify", env=env)
    assert verified.returncode == 0 and "Audit trail intact: 5 record(s)" in verified.stdout, verified.stdout


def test_archive_records_still_refuse_the_rollback_and_are_kept(env):
    archived = run_python(ARCHIVE_RECORD, env)
    assert archived.returncode == 0, archived.stderr[-3000:]
    back = manage("migrate", "audit", RELEASE_BEFORE_ARCHIVE, "-v0", env=env, timeout=300)
    assert back.returncode != 0 and "has archived partitions" in back.stderr, back.stderr[-3000:]
    assert _counts(env) == "5 1"
    forward = manage("migrate", "-v0", env=env, timeout=300)
    assert forward.returncode == 0, forward.stderr[-3000:]
