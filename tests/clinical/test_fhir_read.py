"""FHIR read (`Patient/{id}`) of a patient it cannot serve, and searches that ask for the total alone."""

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.audit.models import AuditEvent
from apps.clinical.models import Encounter, Observation, Patient
from apps.clinical.services import patient_soft_delete

pytestmark = pytest.mark.django_db


def test_a_deleted_patient_is_gone_not_missing(clinician, patient, django_capture_on_commit_callbacks):
    """FHIR: a read of a resource the server knows was deleted is 410 Gone, so a client stops retrying and
    drops its copy; an id never used stays 404. Both are audited as reads that found no patient."""
    assert clinician.get(f"/fhir/Patient/{patient.pk}").status_code == 200  # cached now
    with django_capture_on_commit_callbacks(execute=True):
        patient_soft_delete(patient=patient)
    response = clinician.get(f"/fhir/Patient/{patient.pk}")
    assert response.status_code == 410, response.content[:300]
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].code == "deleted"
    assert "MRN" not in response.content.decode()
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome, event.resource_id) == ("read", "not_found", str(patient.pk))
    missing = clinician.get(f"/fhir/Patient/{patient.pk + 1000}")
    assert missing.status_code == 404
    assert OperationOutcome.model_validate(missing.json()).issue[0].code == "not-found"


def _bundle(response) -> Bundle:
    assert response.status_code == 200, response.content[:300]
    return Bundle.model_validate(response.json())


def test_count_zero_and_summary_count_answer_the_total_alone(clinician, loaded):
    """FHIR: `_count=0` and `_summary=count` ask how many match: Bundle.total, no entries, no next link (the
    ward's "how many heart rates since admission"). `_count=0` was refused as out of range."""
    patient = Patient.objects.order_by("pk").first()
    heart_rates = Observation.objects.filter(patient=patient, code="8867-4").count()
    assert heart_rates > 1
    for query in ("_count=0", "_summary=count", "_summary=count&_count=5"):
        bundle = _bundle(clinician.get(f"/fhir/Observation?patient={patient.pk}&code=8867-4&{query}"))
        assert bundle.total == heart_rates and not bundle.entry
        assert [link.relation for link in bundle.link] == ["self"]
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.patient_id, event.result_count) == ("search", patient.pk, heart_rates)
    active = Patient.objects.filter(is_deleted=False, family_search__startswith="m").count()
    assert _bundle(clinician.get("/fhir/Patient?family=m&_count=0")).total == active
    assert _bundle(clinician.get("/fhir/Patient?_summary=count")).total == Patient.objects.count()
    posted = clinician.post(
        "/fhir/Encounter/_search",
        f"patient={patient.pk}&_summary=count",
        content_type="application/x-www-form-urlencoded",
    )
    assert _bundle(posted).total == Encounter.objects.filter(patient=patient).count()
    assert _bundle(posted).link[0].url == "http://testserver/fhir/Encounter"
    for query in ("_summary=text", "_count=-1", "_summary=count&_sort=code"):
        response = clinician.get(f"/fhir/Observation?patient={patient.pk}&{query}")
        assert response.status_code == 400, query
        OperationOutcome.model_validate(response.json())


def test_a_deleted_patients_records_count_as_none(clinician, loaded, django_capture_on_commit_callbacks):
    patient = Patient.objects.order_by("pk").first()
    with django_capture_on_commit_callbacks(execute=True):
        patient_soft_delete(patient=patient)
    assert _bundle(clinician.get(f"/fhir/Observation?patient={patient.pk}&_count=0")).total == 0
    assert _bundle(clinician.get("/fhir/Patient?_summary=count")).total == Patient.objects.count() - 1
