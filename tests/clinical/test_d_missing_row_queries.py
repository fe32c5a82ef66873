"""A FHIR read of an id no active row has asks the database once.

Before: the lookup of the active row found nothing, then a second query asked whether a deleted one has the id
(404 or 410), two queries for every miss (`GET /fhir/Patient/<id>` of an unknown or deleted patient, and an
Observation, Encounter or MedicationRequest of one). The one lookup now reads the row whatever its state.
"""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.caching.stack import default_stack
from apps.clinical.models import Encounter, MedicationRequest, Observation
from apps.clinical.services import observation_record, patient_soft_delete

pytestmark = pytest.mark.django_db


def _read(clinician, url: str, table: str):
    """The answer, and the queries of `table` it took (the audit record's own are not counted)."""
    default_stack().clear_local()
    with CaptureQueriesContext(connection) as queries:
        response = clinician.get(url)
    return response, [query["sql"] for query in queries if f'"{table}"' in query["sql"]]


def _last_read() -> AuditEvent:
    return AuditEvent.objects.filter(action="read").order_by("-seq").first()


def test_an_unknown_patient_is_one_query_and_404(clinician, patient):
    response, queries = _read(clinician, f"/fhir/Patient/{patient.pk + 1000}", "clinical_patient")
    assert response.status_code == 404
    assert len(queries) == 1, queries
    event = _last_read()
    assert (event.resource_id, event.patient_id, event.outcome) == (str(patient.pk + 1000), None, "not_found")


def test_a_deleted_patient_is_one_query_and_410(clinician, patient, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        patient_soft_delete(patient=patient)
    response, queries = _read(clinician, f"/fhir/Patient/{patient.pk}", "clinical_patient")
    assert response.status_code == 410
    assert len(queries) == 1, queries
    event = _last_read()
    assert (event.resource_id, event.outcome) == (str(patient.pk), "not_found")


def test_an_active_patient_is_still_one_query(clinician, patient):
    response, queries = _read(clinician, f"/fhir/Patient/{patient.pk}", "clinical_patient")
    assert response.status_code == 200 and response.json()["active"] is True
    assert len(queries) == 1, queries


@pytest.mark.parametrize("model", [Observation, Encounter, MedicationRequest])
def test_an_unknown_clinical_row_is_one_query_and_404(clinician, patient, model):
    table = model._meta.db_table
    response, queries = _read(clinician, f"/fhir/{model.__name__}/999999", table)
    assert response.status_code == 404
    assert len(queries) == 1, queries
    event = _last_read()
    assert (event.resource_id, event.patient_id, event.outcome) == ("999999", None, "not_found")


def test_a_deleted_patients_observation_is_one_query_and_410_naming_the_patient(
    clinician, patient, django_capture_on_commit_callbacks
):
    row = observation_record(patient=patient, code="8867-4", value=72, effective_at=datetime.now(UTC))
    served, queries = _read(clinician, f"/fhir/Observation/{row.pk}", "clinical_observation")
    assert served.status_code == 200 and served.json()["id"] == str(row.pk) and len(queries) == 1, queries
    with django_capture_on_commit_callbacks(execute=True):
        patient_soft_delete(patient=patient)
    response, queries = _read(clinician, f"/fhir/Observation/{row.pk}", "clinical_observation")
    assert response.status_code == 410
    assert len(queries) == 1, queries
    event = _last_read()
    assert (event.resource_id, event.patient_id, event.outcome) == (str(row.pk), patient.pk, "not_found")
