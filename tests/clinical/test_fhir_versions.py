"""FHIR resource metadata: a Patient carried no `meta.lastUpdated` or `meta.versionId` and its read no ETag or
Last-Modified, so a FHIR client could neither tell a changed patient from its copy nor ask "has it changed?".
They come from the row's `updated_at`, kept in the cached card, so the cached read still reads no patient row."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.http import http_date
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.patient import Patient as FhirPatient

from apps.audit.models import AuditEvent
from apps.caching.stack import invalidate_scopes
from apps.clinical.models import Patient
from apps.clinical.services import patient_scope

pytestmark = pytest.mark.django_db


def _version(moment: datetime) -> str:
    return str((moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1))


def test_a_patient_read_says_its_version_and_last_update(clinician, patient):
    patient.refresh_from_db()
    response = clinician.get(f"/fhir/Patient/{patient.pk}")
    assert response.status_code == 200, response.content[:300]
    resource = FhirPatient.model_validate(response.json())
    assert resource.meta.lastUpdated == patient.updated_at
    assert resource.meta.versionId == _version(patient.updated_at)
    assert response["ETag"] == f'W/"{_version(patient.updated_at)}"'
    assert response["Last-Modified"] == http_date(patient.updated_at.timestamp())
    assert response["Cache-Control"] == "no-store"  # validators, yet no browser or proxy keeps PHI
    # The REST card says the same moment.
    card = clinician.get(f"/api/v1/patients/{patient.pk}/").json()
    assert datetime.fromisoformat(card["updated_at"]) == patient.updated_at


def test_if_none_match_answers_304_from_the_cache_and_is_audited(clinician, patient):
    etag = clinician.get(f"/fhir/Patient/{patient.pk}")["ETag"]  # the card is cached now
    before = AuditEvent.objects.count()
    with CaptureQueriesContext(connection) as queries:
        unchanged = clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged["ETag"] == etag and unchanged["Last-Modified"]
    assert not [q for q in queries if "clinical_patient" in q["sql"]]
    event = AuditEvent.objects.order_by("-seq").first()
    assert AuditEvent.objects.count() == before + 1
    assert (event.action, event.patient_id, event.served_from_cache) == ("read", patient.pk, True)
    for tag in (etag.removeprefix("W/"), f'"x", {etag}', "*"):  # weak comparison, a list, any
        assert clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_NONE_MATCH=tag).status_code == 304, tag
    assert clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_NONE_MATCH='W/"1"').status_code == 200


def test_if_modified_since_answers_304_until_the_patient_changes(
    clinician, patient, django_capture_on_commit_callbacks
):
    first = clinician.get(f"/fhir/Patient/{patient.pk}")
    since = first["Last-Modified"]
    assert clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_MODIFIED_SINCE=since).status_code == 304
    earlier = http_date((patient.updated_at - timedelta(minutes=1)).timestamp())
    assert clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_MODIFIED_SINCE=earlier).status_code == 200
    assert clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_MODIFIED_SINCE="yesterday").status_code == 200
    # A change of the row (its writes invalidate the patient's scope) is a new version.
    with django_capture_on_commit_callbacks(execute=True):
        Patient.objects.filter(pk=patient.pk).update(updated_at=patient.updated_at + timedelta(hours=1))
        invalidate_scopes(patient_scope(patient.pk))
    changed = clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    assert FhirPatient.model_validate(changed.json()).meta.versionId == changed["ETag"][3:-1]
    assert clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_MODIFIED_SINCE=since).status_code == 200


def test_search_entries_carry_meta_too(clinician, patient):
    patient.refresh_from_db()
    for response in (
        clinician.get("/fhir/Patient", {"family": "mu"}),
        clinician.get("/fhir/Patient", {"identifier": "MRN-000123"}),  # compiled
        clinician.post("/fhir/Patient/_search", "family=mu", content_type="application/x-www-form-urlencoded"),
    ):
        assert response.status_code == 200, response.content[:300]
        bundle = Bundle.model_validate(response.json())
        assert [entry.resource.meta.versionId for entry in bundle.entry] == [_version(patient.updated_at)]
        assert bundle.entry[0].resource.meta.lastUpdated == patient.updated_at
    window = clinician.get("/api/v1/patients/window/", {"name": "mu"}).json()["results"]
    assert datetime.fromisoformat(window[0]["updated_at"]) == patient.updated_at


def test_the_capability_statement_says_patient_reads_are_versioned_and_conditional(api):
    statement = CapabilityStatement.model_validate(api.get("/fhir/metadata").json())
    patient = next(resource for resource in statement.rest[0].resource if resource.type == "Patient")
    assert (patient.versioning, patient.conditionalRead, patient.readHistory) == ("versioned", "full-support", False)
