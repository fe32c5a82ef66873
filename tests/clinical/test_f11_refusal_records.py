"""What a refusal's record says (c076039 recorded every other 4xx naming a patient). It named the URL's patient id
whether or not a patient had it: a 400 about the next free id sat, once that patient was registered, in their
history (not-found records name none). It put the patient id in resource_id whatever the resource (a reading's
PATCH named Observation <patient id>, someone else's reading), and recorded a 405 (DELETE, PUT) as `create`."""

from __future__ import annotations

import pytest
from django.db.models import Max

from apps.audit.models import AuditEvent
from apps.clinical.models import Patient
from apps.clinical.services import patient_soft_delete

pytestmark = pytest.mark.django_db

VITAL = {"code": "8867-4", "value": 72, "unit": "/min", "effective_at": "2026-01-01T08:00:00Z"}


def _record(before: int) -> AuditEvent:
    [event] = AuditEvent.objects.order_by("seq")[before:]
    return event


def _unused_id() -> int:
    return (Patient.objects.aggregate(top=Max("pk"))["top"] or 0) + 1000


def _refusals(patient_pk: int) -> list[tuple[str, str, object, dict]]:
    base = f"/api/v1/patients/{patient_pk}"
    return [
        ("get", f"{base}/encounters/", {"status": "bogus"}, {}),  # the new catch-all
        ("post", f"{base}/vitals/", {**VITAL, "value": "x"}, {}),
        ("get", "/fhir/Observation", {"patient": str(patient_pk), "date": "xx"}, {}),
        ("get", f"{base}/vitals/", {}, {"HTTP_X_PURPOSE_OF_USE": "SNOOP"}),  # purpose of use, audited before
        ("get", f"{base}/", {"format": "xml"}, {}),  # ?format, audited before
    ]


def _send(client, method, path, data, headers):
    if method == "post":
        return client.post(path, data, format="json", **headers)
    return client.get(path, data, **headers)


@pytest.mark.parametrize("case", range(5))
def test_a_refusal_about_an_id_no_patient_has_names_no_patient(clinician, patient, case):
    method, path, data, headers = _refusals(_unused_id())[case]
    before = AuditEvent.objects.count()
    response = _send(clinician, method, path, data, headers)
    assert response.status_code == 400, response.content[:300]
    event = _record(before)
    assert (event.outcome, event.patient_id, event.patient_ids) == ("error", None, None)


@pytest.mark.parametrize("case", range(5))
def test_a_refusal_about_a_deleted_patient_names_no_patient(clinician, patient, case):
    patient_soft_delete(patient=patient)
    method, path, data, headers = _refusals(patient.pk)[case]
    before = AuditEvent.objects.count()
    response = _send(clinician, method, path, data, headers)
    assert response.status_code == 400, response.content[:300]
    assert _record(before).patient_id is None


def test_an_existing_patient_is_still_named(clinician, patient):
    for method, path, data, headers in _refusals(patient.pk):
        before = AuditEvent.objects.count()
        assert _send(clinician, method, path, data, headers).status_code == 400, path
        assert _record(before).patient_id == patient.pk, path


def test_a_missing_scope_on_an_unknown_id_names_no_patient(api, issue_token, patient):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', name='no-clinical')}")
    before = AuditEvent.objects.count()
    assert api.get(f"/api/v1/patients/{_unused_id()}/vitals/").status_code == 403
    assert (_record(before).outcome, _record(before).patient_id) == ("denied", None)
    before = AuditEvent.objects.count()
    assert api.get(f"/api/v1/patients/{patient.pk}/vitals/").status_code == 403
    assert _record(before).patient_id == patient.pk


def test_an_inference_call_without_patient_read_names_no_unknown_patient(api, issue_token, patient):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}")
    before = AuditEvent.objects.count()
    body = {"inputs": ["fever"], "patient_id": _unused_id()}
    assert api.post("/api/v1/inference/any-deployment/embed", body, format="json").status_code == 403
    event = _record(before)
    assert (event.outcome, event.resource_id, event.patient_id) == ("denied", "any-deployment", None)


def test_a_refused_retraction_names_the_reading_not_the_patient(clinician, patient, vitals):
    for observation_id in (vitals[0].pk, vitals[-1].pk + 1000):
        before = AuditEvent.objects.count()
        url = f"/api/v1/patients/{patient.pk}/vitals/{observation_id}/"
        assert clinician.patch(url, {"status": "final"}, format="json").status_code == 400
        event = _record(before)
        assert (event.action, event.resource_type, event.resource_id, event.patient_id) == (
            "update", "Observation", str(observation_id), patient.pk
        )  # fmt: skip


def test_a_refused_list_or_create_names_no_resource(clinician, patient):
    base = f"/api/v1/patients/{patient.pk}"
    cases = [
        ("get", f"{base}/encounters/", {"status": "bogus"}, "search", "Encounter"),
        ("post", f"{base}/vitals/", {**VITAL, "value": "x"}, "create", "Observation"),
        ("post", f"{base}/vitals/", {**VITAL, "encounter_id": 999_999_999}, "create", "Observation"),
        ("get", f"{base}/vitals/", {"since": "2026-01-01T08:00:00"}, "search", "Observation"),
    ]
    for method, path, data, action, resource_type in cases:
        before = AuditEvent.objects.count()
        assert _send(clinician, method, path, data, {}).status_code == 400, data
        event = _record(before)
        assert (event.action, event.resource_type, event.resource_id, event.patient_id) == (
            action, resource_type, "", patient.pk
        ), data  # fmt: skip


def test_a_refused_patient_read_names_the_patient(clinician, patient):
    before = AuditEvent.objects.count()
    assert clinician.get(f"/api/v1/patients/{patient.pk}/", {"bogus": "1"}).status_code == 400
    event = _record(before)
    assert (event.action, event.resource_type, event.resource_id, event.patient_id) == (
        "read", "Patient", str(patient.pk), patient.pk
    )  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("delete", "/api/v1/patients/{}/", "delete"),
        ("put", "/api/v1/patients/{}/", "update"),
        ("post", "/api/v1/patients/{}/", "create"),
        ("put", "/fhir/Patient/{}", "update"),
        ("delete", "/fhir/Patient/{}", "delete"),
    ],
)
def test_a_405_is_recorded_as_what_its_method_asked(clinician, patient, method, path, action):
    before = AuditEvent.objects.count()
    response = getattr(clinician, method)(path.format(patient.pk), {}, format="json")
    assert response.status_code == 405, response.content[:300]
    event = _record(before)
    assert (event.action, event.resource_type, event.resource_id, event.patient_id, event.outcome) == (
        action, "Patient", str(patient.pk), patient.pk, "error"
    )  # fmt: skip
    assert Patient.objects.filter(pk=patient.pk, is_deleted=False).exists()


def test_a_refused_search_of_several_ids_names_only_the_existing_patients(api, issue_token, patient):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('clinical:read', name='lab-feed')}")
    before = AuditEvent.objects.count()
    assert api.get("/fhir/Patient", {"_id": f"{patient.pk},Patient/{_unused_id()}"}).status_code == 403
    event = _record(before)
    assert (event.action, event.outcome, event.patient_id, event.patient_ids) == (
        "search", "denied", patient.pk, None
    )  # fmt: skip
