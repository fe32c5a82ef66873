"""A save that waited on a row lock stamps above the lock holder's write (review g, finding 3; migration 0009): it
stamped its statement's start, before the holder's write, and so committed last with the lower stamp, which a
`_lastUpdated=gt<the holder's>` sync missed."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from apps.clinical import services
from apps.clinical.models import Observation, Patient
from tests.clinical.backdate import backdate

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has no row locks nor the trigger"),
]

WAIT = 120  # seconds, for a loaded CI machine


def _waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "Lock"


def test_a_save_that_waited_on_the_row_lock_stamps_above_the_holders(patient):
    reading = services.observation_record(patient=patient, code="8867-4", value=70,
                                          effective_at=timezone.now() - timedelta(hours=3))  # fmt: skip
    locked, write, pids, stamps, errors = threading.Event(), threading.Event(), [], {}, []

    def holder():
        try:
            with transaction.atomic():
                row = Observation.objects.select_for_update().get(pk=reading.pk)
                locked.set()
                assert write.wait(WAIT)
                row.value = 71
                row.save()
                stamps["holder"] = row.updated_at
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            locked.set()
        finally:
            connections.close_all()

    def waiter():
        try:
            assert locked.wait(WAIT)
            row = Observation.objects.get(pk=reading.pk)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids.append(cursor.fetchone()[0])
            row.value = 72
            row.save()  # waits on the holder's lock; its statement started before the holder's write
            stamps["waiter"] = row.updated_at
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT
    while not (pids and _waiting_on_a_lock(pids[0])) and not errors and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not errors and pids and _waiting_on_a_lock(pids[0]), "the waiter's save never waited on the row lock"
    write.set()
    for thread in threads:
        thread.join(WAIT)
    assert not errors and not any(thread.is_alive() for thread in threads), errors
    stored = Observation.objects.values_list("updated_at", "value").get(pk=reading.pk)
    assert stored == (stamps["waiter"], 72)  # the row in memory holds the stamp the database stored
    assert stamps["waiter"] > stamps["holder"], stamps  # was 0.8 s below it


@pytest.mark.django_db
def test_an_earlier_explicit_stamp_is_raised_unless_the_repair_disables_the_trigger(patient):
    stored = Patient.objects.get(pk=patient.pk).updated_at
    earlier = stored - timedelta(days=1)
    Patient.objects.filter(pk=patient.pk).update(updated_at=earlier, sex="male")
    assert Patient.objects.get(pk=patient.pk).updated_at == stored + timedelta(microseconds=1)
    backdate(Patient.objects.filter(pk=patient.pk), earlier)  # as 0009's docstring says a repair does
    assert Patient.objects.get(pk=patient.pk).updated_at == earlier
