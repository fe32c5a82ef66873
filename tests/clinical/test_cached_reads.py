"""The clinical reads go through the cache: hits are still audited, writes invalidate, no MRN in Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.caching.stack import default_stack
from apps.clinical.services import patient_soft_delete


def _hits(namespace: str) -> int:
    return sum(counts["hits"] for (ns, tier), counts in default_stack().stats().items() if ns == namespace)


def test_a_cached_read_is_served_from_the_cache_and_audited_every_time(clinician, patient):
    for _ in range(3):
        assert clinician.get(f"/api/v1/patients/{patient.pk}/").json()["family_name"] == "Müller"
    assert _hits("patient_data") >= 2
    records = AuditEvent.objects.filter(action="read", patient_id=patient.pk).order_by("id")
    assert [record.served_from_cache for record in records] == [False, True, True]  # loaded once, then hits


def test_fhir_patient_reads_share_the_cache_with_the_api_and_a_delete_ends_them(
    clinician, patient, django_capture_on_commit_callbacks
):
    card = clinician.get(f"/api/v1/patients/{patient.pk}/").json()  # loads the card into patient_data
    with CaptureQueriesContext(connection) as queries:
        resource = clinician.get(f"/fhir/Patient/{patient.pk}").json()
    assert queries and not [q for q in queries if "clinical_patient" in q["sql"]]  # only the audit record's
    assert resource["name"][0]["family"] == card["family_name"] and resource["birthDate"] == card["birth_date"]
    assert resource["active"] is True
    assert AuditEvent.objects.filter(resource_type="Patient", patient_id=patient.pk).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        patient_soft_delete(patient=patient)
    default_stack().clear_local()  # as another process sees it: Redis must not serve the old card
    assert clinician.get(f"/fhir/Patient/{patient.pk}").status_code == 410  # Gone: not served, known deleted


def test_a_recorded_vital_sign_is_in_the_next_read(clinician, patient, django_capture_on_commit_callbacks):
    url = f"/api/v1/patients/{patient.pk}/vitals/?latest=true&code=8867-4"
    assert clinician.get(url).json()["results"] == []
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        created = clinician.post(
            f"/api/v1/patients/{patient.pk}/vitals/", {"code": "8867-4", "value": 88, "effective_at": at}, format="json"
        )
    assert created.status_code == 201
    # The patient check before the write was a cache hit; the record of the write still says it was none.
    assert AuditEvent.objects.get(action="create", resource_type="Observation").served_from_cache is False
    default_stack().clear_local()  # another process: its L1 never held it, Redis must not serve the old page
    assert [o["value"] for o in clinician.get(url).json()["results"]] == [88]


def test_an_mrn_lookup_leaves_no_identifier_in_redis(clinician, patient):
    assert clinician.post("/api/v1/patients/lookup/", {"mrn": patient.mrn}, format="json").status_code == 200
    assert clinician.post("/api/v1/patients/lookup/", {"mrn": patient.mrn}, format="json").status_code == 200
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = client.keys("cpc:*")
    assert keys
    for key in keys:
        value = client.get(key) or b""
        for secret in (patient.mrn.encode(), "Müller".encode(), b"1970-05-04"):
            assert secret not in key and secret not in value


@pytest.mark.parametrize("path", ["medications/", "encounters/"])
def test_paged_lists_are_cached_per_query_and_dropped_by_a_delete(
    clinician, patient, path, django_capture_on_commit_callbacks
):
    url = f"/api/v1/patients/{patient.pk}/{path}"
    assert clinician.get(url).json()["results"] == []
    assert clinician.get(url + "?page_size=5").json()["results"] == []
    assert clinician.get(url).json()["results"] == []
    pages = AuditEvent.objects.filter(action="search", patient_id=patient.pk).order_by("id")
    assert [record.served_from_cache for record in pages] == [False, False, True]  # each query is its own entry
    with django_capture_on_commit_callbacks(execute=True):
        patient_soft_delete(patient=patient)
    assert clinician.get(url).status_code == 404


def test_a_posted_search_is_kept_sealed_between_pages(clinician, patient):
    from datetime import date

    from apps.clinical.services import patient_create

    patient_create(mrn="MRN-000124", family_name="Müller", given_name="Bernd", birth_date=date(1971, 1, 2))
    first = clinician.post(
        "/fhir/Patient/_search", "family=Müller&_count=1", content_type="application/x-www-form-urlencoded"
    ).json()
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert "Müller" not in next_url and "_search=" in next_url
    client = redis.Redis.from_url(settings.REDIS_URL)
    stored = [client.get(key) for key in client.keys("*fhir:search*")]
    assert stored and all("Müller".encode() not in value and b"M\\u00fcller" not in value for value in stored)
    second = clinician.get(next_url.replace("http://testserver", "")).json()
    assert second["entry"][0]["resource"]["id"] != first["entry"][0]["resource"]["id"]
