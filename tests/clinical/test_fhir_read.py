"""FHIR read (`Patient/{id}`): what a client is told about a patient it cannot be served."""

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.audit.models import AuditEvent
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
