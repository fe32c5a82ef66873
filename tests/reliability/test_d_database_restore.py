"""The database restored from last night's backup under a Redis and processes that kept what they had: no cache
tier serves what the restored database no longer has, and every process takes the restored policies.

The restore is simulated on the suite's database by putting back, with plain SQL (as pg_restore writes: no model
code, no invalidation), the rows and sequence values a snapshot took of the tables the scenario writes. A real
pg_dump / pg_restore of a served database was checked by hand (the README's "Backup and restore")."""

from __future__ import annotations

import time
from datetime import date

import pytest
from django.db import connection

from apps.caching.stack import default_stack
from apps.clinical.models import Patient
from apps.clinical.services import patient_create
from tests.caching.support import make_stack, set_policy

pytestmark = pytest.mark.django_db(transaction=True)

RESTORE_SEQUENCE = "caching_restore_watermark"  # migration caching 0006: taken back by a restore
TABLES = {  # table: primary key
    "clinical_patient": "id",
    "caching_cachescopegeneration": "scope",
    "caching_cachepolicy": "id",
    "caching_cacheentry": "key",
}


class Backup:
    """The rows of TABLES and the value of RESTORE_SEQUENCE, as a backup taken now holds them."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[list[str], list[tuple]]] = {}
        with connection.cursor() as cursor:
            for table in TABLES:
                cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - the test's own table names
                self.rows[table] = ([column.name for column in cursor.description], cursor.fetchall())
            cursor.execute(f"SELECT last_value, is_called FROM {RESTORE_SEQUENCE}")  # noqa: S608
            self.sequence = cursor.fetchone()

    def restore(self) -> None:
        """Put every row back as it was (rows written since deleted) and the sequence where it was."""
        with connection.cursor() as cursor:
            for table, key in TABLES.items():
                columns, rows = self.rows[table]
                at = columns.index(key)
                kept = [row[at] for row in rows]
                cursor.execute(f"DELETE FROM {table} WHERE NOT ({key} = ANY(%s))", [kept])  # noqa: S608
                for row in rows:
                    cursor.execute(f"DELETE FROM {table} WHERE {key} = %s", [row[at]])  # noqa: S608
                    cursor.execute(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(row))})",  # noqa: S608
                        list(row),
                    )
            cursor.execute("SELECT setval(%s, %s, %s)", [RESTORE_SEQUENCE, *self.sequence])


def _family_name(patient_id: int) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT family_name FROM clinical_patient WHERE id = %s", [patient_id])
        row = cursor.fetchone()
    return row[0] if row else None


def _rename(patient: Patient, name: str) -> None:
    patient.refresh_from_db()
    patient.family_name = name
    patient.save()  # bumps the patient's scope generation, published to Redis on commit


def _read(stack, patient: Patient) -> str | None:
    """A cached read of the patient's name through `stack`, as another process of the product would make it."""
    stack.tick(force=True)  # the once-a-second poll, due by now in a process that serves for a second
    return stack.get_or_load("patient_data", ["restore-test-name", patient.pk], lambda: _family_name(patient.pk),
                             scope=f"patient:{patient.pk}")  # fmt: skip


@pytest.fixture
def patient(db) -> Patient:
    patient = patient_create(mrn="MRN-RESTORE-1", family_name="Before", given_name="Ann", birth_date=date(1970, 1, 2))
    _rename(patient, "Before")  # the scope has a generation row when the backup is taken, as most patients do
    return patient


@pytest.fixture
def clinician(api, issue_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', 'patient:write')}")
    return api


def test_two_processes_serve_the_restored_name_and_a_write_after_the_restore(patient):
    first, second = make_stack(), make_stack()
    assert _read(first, patient) == _read(second, patient) == "Before"
    backup = Backup()
    _rename(patient, "After the backup")
    assert _read(first, patient) == _read(second, patient) == "After the backup"  # in both L1s and in L2

    backup.restore()
    assert _family_name(patient.pk) == "Before"
    # The first process to poll sees the database went back; the other one hears of it at its own next poll.
    assert _read(first, patient) == "Before"
    assert _read(second, patient) == "Before"

    # A write after the restore bumps the scope back to the generation the lost write had: still the new value.
    _rename(patient, "After the restore")
    assert _read(first, patient) == _read(second, patient) == "After the restore"


def test_a_write_right_after_the_restore_is_served_though_it_takes_the_lost_writes_generation(patient):
    stack = make_stack()
    assert _read(stack, patient) == "Before"
    backup = Backup()
    _rename(patient, "After the backup")
    assert _read(stack, patient) == "After the backup"

    backup.restore()
    _rename(patient, "After the restore")  # before any poll: its generation is the one the lost write had
    assert _read(stack, patient) == "After the restore"


def test_the_same_backup_restored_twice(patient):
    stack = make_stack()
    assert _read(stack, patient) == "Before"
    backup = Backup()
    _rename(patient, "After the backup")
    assert _read(stack, patient) == "After the backup"
    backup.restore()
    assert _read(stack, patient) == "Before"
    _rename(patient, "After the first restore")
    assert _read(stack, patient) == "After the first restore"

    backup.restore()  # its sequence value again: the same number drawn when the restore is seen
    assert _read(stack, patient) == "Before"


def test_the_api_serves_no_patient_the_restored_database_lacks_and_takes_the_restored_policy(clinician, patient):
    stack = default_stack()
    assert clinician.get(f"/api/v1/patients/{patient.pk}/").json()["family_name"] == "Before"
    ttl = stack.policy("patient_data").ttl
    backup = Backup()

    created = clinician.post("/api/v1/patients/", {"mrn": "MRN-RESTORE-2", "family_name": "Created", "given_name":
                             "Bo", "birth_date": "1981-02-03"}, format="json")  # fmt: skip
    assert created.status_code == 201
    created_url = f"/api/v1/patients/{created.json()['id']}/"
    _rename(patient, "After the backup")
    set_policy("patient_data", ttl_seconds=ttl + 7)
    stack.tick(force=True)
    assert stack.policy("patient_data").ttl == ttl + 7
    for _ in range(2):
        assert clinician.get(created_url).status_code == 200
        assert clinician.get(f"/api/v1/patients/{patient.pk}/").json()["family_name"] == "After the backup"

    backup.restore()
    time.sleep(1.2)  # the process's next read polls (due once a second): no read of its L1 before it
    assert clinician.get(created_url).status_code == 404
    assert clinician.get(f"/api/v1/patients/{patient.pk}/").json()["family_name"] == "Before"
    assert stack.policy("patient_data").ttl == ttl


def test_polls_of_a_database_that_only_moves_on_start_no_restore_epoch(patient):
    """Polls of a database that only moves on never start a restore epoch: L1 entries stay (no needless loads)."""
    stack = make_stack(poll_interval=60)  # L1 read after each forced poll however slow the machine
    loads = []

    def load():
        loads.append(1)
        return _family_name(patient.pk)

    epoch = None
    for _ in range(4):
        stack.tick(force=True)
        epoch = epoch or stack._l2_epoch
        assert (
            stack.get_or_load("patient_data", ["moves-on", patient.pk], load, scope=f"patient:{patient.pk}") == "Before"
        )
    assert stack._l2_epoch == epoch
    assert len(loads) == 1


def test_the_local_caches_drop_what_the_restore_took_back(patient):
    """The per-process caches keyed by a shared version (API clients, rate-limit policies) were bumped by the edits
    the restore took back, and by nothing since: each process drops them when it sees the restore."""
    from apps.core.local_cache import VersionedLocalCache

    stack = make_stack()
    local = VersionedLocalCache("d-restore-test", ttl=3600)
    assert _read(stack, patient) == "Before"
    backup = Backup()
    _rename(patient, "After the backup")
    local.invalidate()  # as the edit's own invalidation does
    assert local.get("name", lambda: _family_name(patient.pk)) == "After the backup"
    assert _read(stack, patient) == "After the backup"

    backup.restore()
    assert _read(stack, patient) == "Before"
    assert local.get("name", lambda: _family_name(patient.pk)) == "Before"
