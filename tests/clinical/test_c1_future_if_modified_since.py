"""An If-Modified-Since later than the server's clock is ignored (RFC 9110, 13.1.3): the FHIR read answered it
304, so a client with a skewed or made-up date kept a copy never checked against any version of the patient."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.http import http_date
from fhir.resources.R4B.patient import Patient as FhirPatient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("ahead", [timedelta(hours=1), timedelta(days=3650)])
def test_a_future_if_modified_since_is_answered_in_full(clinician, patient, ahead):
    future = http_date((timezone.now() + ahead).timestamp())
    response = clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_MODIFIED_SINCE=future)
    assert response.status_code == 200, response.content[:300]
    assert FhirPatient.model_validate(response.json()).id == str(patient.pk)
    assert response["ETag"] and response["Last-Modified"]


def test_a_past_date_at_or_after_the_change_still_answers_304(clinician, patient):
    since = clinician.get(f"/fhir/Patient/{patient.pk}")["Last-Modified"]
    assert clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_MODIFIED_SINCE=since).status_code == 304
    # If-None-Match decides where both are given (RFC 9110): a future date beside a current ETag is still 304.
    etag = clinician.get(f"/fhir/Patient/{patient.pk}")["ETag"]
    future = http_date((timezone.now() + timedelta(days=1)).timestamp())
    both = clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_IF_NONE_MATCH=etag, HTTP_IF_MODIFIED_SINCE=future)
    assert both.status_code == 304
