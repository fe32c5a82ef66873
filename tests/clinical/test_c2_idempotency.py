"""`Idempotency-Key` on the patient and vitals creates: a client retrying a POST whose answer it lost made a second
reading (or was told its own new patient's MRN exists). The first request with a key is kept a day under (client,
key); a retry with the same body answers the first result again (`Idempotent-Replayed: true`), twins sent at once
create once, the key with another body is a 422, and a replay of what was deleted since a 410."""

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.clinical.models import Observation, Patient
from apps.clinical.services import patient_soft_delete
from apps.core import idempotency
from apps.core.models import IdempotencyKey

PATIENTS = "/api/v1/patients/"
NEW_PATIENT = {"mrn": "MRN-IDEM-1", "family_name": "Okafor", "given_name": "Ada", "birth_date": "1980-02-03"}


def _vitals(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/vitals/"


def _reading(value: float = 80) -> dict:
    return {"code": "8867-4", "value": value, "effective_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}


def _post(client, url, body, key):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_a_retried_patient_create_answers_the_first_result(clinician):
    first = _post(clinician, PATIENTS, NEW_PATIENT, "key-1")
    second = _post(clinician, PATIENTS, NEW_PATIENT, "key-1")
    assert (first.status_code, second.status_code) == (201, 201), second.content[:300]
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert Patient.objects.filter(mrn=NEW_PATIENT["mrn"]).count() == 1
    replay = AuditEvent.objects.order_by("-id").first()  # the replay discloses the patient: a read
    assert (replay.action, replay.outcome, replay.patient_id) == ("read", "success", first.json()["id"])


@pytest.mark.django_db
def test_a_retried_reading_is_recorded_once(clinician, patient):
    body = _reading()
    first = _post(clinician, _vitals(patient), body, "reading-1")
    second = _post(clinician, _vitals(patient), body, "reading-1")
    assert (first.status_code, second.status_code) == (201, 201), second.content[:300]
    assert second.json() == first.json() and second.headers["Idempotent-Replayed"] == "true"
    assert Observation.objects.filter(patient=patient).count() == 1
    third = _post(clinician, _vitals(patient), body, "reading-2")  # another key: another reading
    assert third.status_code == 201 and "Idempotent-Replayed" not in third.headers
    assert Observation.objects.filter(patient=patient).count() == 2


@pytest.mark.django_db
def test_the_key_with_another_body_or_endpoint_is_a_422(clinician, patient):
    assert _post(clinician, _vitals(patient), _reading(80), "k").status_code == 201
    for url, body in ((_vitals(patient), _reading(81)), (PATIENTS, NEW_PATIENT)):
        response = _post(clinician, url, body, "k")
        assert response.status_code == 422, response.content[:300]
        assert response.json()["code"] == "idempotency_key_reused"
    assert Observation.objects.filter(patient=patient).count() == 1
    assert not Patient.objects.filter(mrn=NEW_PATIENT["mrn"]).exists()


@pytest.mark.django_db
def test_a_replay_of_what_was_deleted_since_is_a_410(clinician, patient):
    body = _reading()
    created = _post(clinician, PATIENTS, NEW_PATIENT, "p")
    reading = _post(clinician, _vitals(patient), body, "r")
    patient_soft_delete(patient=Patient.objects.get(pk=created.json()["id"]))
    patient_soft_delete(patient=patient)
    for url, sent, key in ((PATIENTS, NEW_PATIENT, "p"), (_vitals(patient), body, "r")):
        response = _post(clinician, url, sent, key)
        assert response.status_code == 410, (url, response.content[:300])
        assert response.json()["code"] == "gone"
    assert reading.status_code == 201


@pytest.mark.django_db
def test_keys_are_per_client_and_kept_without_phi(clinician, patient, issue_token):
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:write', name='other-app')}")
    body = _reading()
    assert _post(clinician, _vitals(patient), body, "shared").status_code == 201
    theirs = _post(other, _vitals(patient), body, "shared")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    assert Observation.objects.filter(patient=patient).count() == 2
    _post(clinician, PATIENTS, NEW_PATIENT, "phi")
    for row in IdempotencyKey.objects.values():
        kept = " ".join(str(value) for value in row.values())
        assert "Okafor" not in kept and "MRN-IDEM" not in kept and len(row["request_sha256"]) == 64


@pytest.mark.django_db
def test_an_expired_key_is_free_again_and_expired_keys_are_purged_on_a_claim(clinician, patient):
    body = _reading()
    assert _post(clinician, _vitals(patient), body, "old").status_code == 201
    stale = IdempotencyKey.objects.create(client="client:0", key="gone", request_sha256="0" * 64,
                                          created_at=timezone.now() - timedelta(days=2),
                                          expires_at=timezone.now() - timedelta(days=1))  # fmt: skip
    IdempotencyKey.objects.exclude(pk=stale.pk).update(  # the one "old" row (kept as an HMAC)
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    again = _post(clinician, _vitals(patient), body, "old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert Observation.objects.filter(patient=patient).count() == 2
    assert not IdempotencyKey.objects.filter(pk=stale.pk).exists()
    assert IdempotencyKey.objects.exclude(pk=stale.pk).get().expires_at > timezone.now() + timedelta(hours=23)


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", " leading-space", "é", "x" * 256])
def test_a_malformed_key_is_a_400_on_the_header(clinician, patient, key):
    response = _post(clinician, _vitals(patient), _reading(), key)
    assert response.status_code == 400, response.content[:300]
    assert "Idempotency-Key" in response.json()["errors"]
    assert not Observation.objects.exists()


@pytest.mark.django_db
def test_a_refused_create_keeps_no_key(clinician, patient):
    refused = _post(clinician, _vitals(patient), {**_reading(), "value": 900}, "retry-me")
    assert refused.status_code == 400
    assert not IdempotencyKey.objects.exists()
    assert _post(clinician, _vitals(patient), _reading(), "retry-me").status_code == 201


def _twins(monkeypatch, token: str, url: str, body: dict) -> list:
    """The same request sent by two threads, each on its own connection, released together just before each
    claims the key (a barrier), so both claims run at once."""
    ready = threading.Barrier(2, timeout=60)  # the timeout only ends a test whose other thread failed early
    claim = idempotency._claim

    def claim_together(*args, **kwargs):
        ready.wait()
        return claim(*args, **kwargs)

    monkeypatch.setattr(idempotency, "_claim", claim_together)
    answers: list = [None, None]

    def send(index: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            answers[index] = _post(client, url, body, "twin")
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("target", ["patient", "reading"])
def test_twins_sent_at_once_create_once(monkeypatch, issue_token, target):
    from apps.clinical.services import patient_create

    token = issue_token("patient:write", "clinical:write", name="twin-app")
    someone = patient_create(mrn="MRN-T", family_name="Tan", given_name="Li", birth_date=datetime(1970, 1, 1).date())
    url, body = (PATIENTS, NEW_PATIENT) if target == "patient" else (_vitals(someone), _reading())
    answers = _twins(monkeypatch, token, url, body)
    assert [answer.status_code for answer in answers] == [201, 201], [a.content[:200] for a in answers]
    assert answers[0].json() == answers[1].json()
    assert sorted(answer.headers.get("Idempotent-Replayed", "") for answer in answers) == ["", "true"]
    assert Patient.objects.count() == (2 if target == "patient" else 1)
    assert Observation.objects.count() == (0 if target == "patient" else 1)
    assert IdempotencyKey.objects.count() == 1


def _lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_twin_waits_on_the_first_claim_until_it_commits_and_replays_its_answer():
    """The race itself: the second claim is made while the first create's transaction is open (its INSERT waits
    on the uncommitted row), and it answers the first's result once that commits, never creating."""
    claim = idempotency.IdempotentRequest(client="client:1", key="k", request_sha256="a" * 64)
    first_claimed, second_claiming = threading.Event(), threading.Event()
    created, answers = [], {}

    def first_create():  # runs once the first claim is inserted, in its open transaction
        first_claimed.set()
        assert second_claiming.wait(60)
        deadline = time.monotonic() + 60  # waits for a state (the twin's INSERT waiting on this row), not a time
        while not _lock_waiters() and time.monotonic() < deadline:
            time.sleep(0.01)
        created.append(("first", _lock_waiters()))
        return SimpleNamespace(pk=7)

    def second_create():
        created.append("second")
        return SimpleNamespace(pk=8)

    def run(name, create, before=None):
        try:
            if before:
                before()
            answers[name] = idempotency.idempotent_create(
                claim, create=create, replay=lambda resource_id: ("replayed", resource_id), resource_id=lambda r: r.pk
            )
        finally:
            connection.close()

    first = threading.Thread(target=run, args=("first", first_create))
    first.start()

    def after_the_first_claim():
        assert first_claimed.wait(60)
        second_claiming.set()

    second = threading.Thread(target=run, args=("second", second_create, after_the_first_claim))
    second.start()
    first.join()
    second.join()
    assert [name for name, _ in created] == ["first"]
    assert created[0][1] >= 1  # the second claim was waiting on this one's row when it committed
    assert answers["second"] == (("replayed", "7"), True)
    assert answers["first"][1] is False
