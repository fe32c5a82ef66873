"""A revoked or expired token's 401 was recorded as an `anonymous` attempt, sharing one record per address and view
every 10 s with every wrong token from there: a revoked client still trying could not be told from the trail. The
refusal now names the client the token belongs to (found by the token's hash); unknown tokens keep their window."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_create, api_client_revoke
from apps.audit.models import AuditEvent
from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient():
    return patient_create(
        mrn="MRN-ET-0042", family_name="Okafor", given_name="Ada", birth_date=date(1980, 2, 3), sex="female"
    )


@pytest.fixture(autouse=True)
def _long_window(monkeypatch):
    monkeypatch.setattr("apps.audit.views.THROTTLED_RECORD_SECONDS", 3600)  # no window edge inside the test


@pytest.mark.parametrize("ended", ["revoked", "expired"])
def test_an_ended_tokens_refusal_names_its_client(api, patient, ended):
    issued = api_client_create(name="old-ward-app", scopes=["patient:read"])
    client = ApiClient.objects.get(name="old-ward-app")
    if ended == "revoked":
        api_client_revoke(client=client)
    else:
        ApiClient.objects.filter(pk=client.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    url = f"/api/v1/patients/{patient.pk}/"
    assert api.get(url, HTTP_AUTHORIZATION="Bearer not-a-token").status_code == 401  # an unknown one first
    for _ in range(3):
        assert api.get(url, HTTP_AUTHORIZATION=f"Bearer {issued.token}").status_code == 401

    anonymous = AuditEvent.objects.filter(actor_type="anonymous")
    assert anonymous.count() == 1  # the unknown token's window, as before
    [named] = AuditEvent.objects.filter(actor_type="client")  # one per client, address and view per window
    assert (named.actor_id, named.actor_name, named.outcome, named.patient_id) == (
        client.pk, "old-ward-app", "denied", patient.pk
    )  # fmt: skip

    auditor = api_client_create(name="auditor", scopes=["audit:read"]).token
    response = api.get(f"/api/v1/audit/?actor_type=client&actor_id={client.pk}", HTTP_AUTHORIZATION=f"Bearer {auditor}")
    assert [(e["actor_name"], e["outcome"]) for e in response.json()["results"]] == [("old-ward-app", "denied")]


def test_unknown_tokens_still_share_one_record_per_window(api, patient):
    url = f"/api/v1/patients/{patient.pk}/"
    for n in range(5):
        assert api.get(url, HTTP_AUTHORIZATION=f"Bearer cpk_0000000{n}_{'x' * 43}").status_code == 401
    assert AuditEvent.objects.filter(actor_type="anonymous").count() == 1
    assert not AuditEvent.objects.exclude(actor_type="anonymous").exists()
