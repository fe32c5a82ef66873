"""A conditional FHIR read (If-None-Match) is no longer answered 304 after a patient is changed by a queryset
update() or a save(update_fields=...) (a data fix in a shell): updated_at, which versionId and the ETag come from,
was left as it was, so a client holding the old version was told it is current."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.clinical.models import Patient

pytestmark = pytest.mark.django_db


def _save_some(pk: int) -> None:
    row = Patient.objects.get(pk=pk)
    row.family_name = "Meyer"
    row.save(update_fields=["family_name"])


def _save_deferred(pk: int) -> None:
    row = Patient.objects.only("id", "family_name").get(pk=pk)
    row.family_name = "Meyer"
    row.save()


@pytest.mark.parametrize("write", ["update", "update_fields", "deferred"])
def test_a_conditional_read_after_a_write_outside_services_is_answered_200(clinician, patient, elsewhere, write):
    url = f"/fhir/Patient/{patient.pk}"
    etag = clinician.get(url)["ETag"]
    assert clinician.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    change = {
        "update": lambda: Patient.objects.filter(pk=patient.pk).update(family_name="Meyer", mrn="MRN-9"),
        "update_fields": lambda: _save_some(patient.pk),
        "deferred": lambda: _save_deferred(patient.pk),
    }[write]
    elsewhere(change)
    response = clinician.get(url, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["name"][0]["family"] == "Meyer"
    assert response["ETag"] != etag


def test_an_update_that_names_updated_at_keeps_it(patient):
    at = Patient.objects.get(pk=patient.pk).updated_at + timedelta(days=1)  # a later one (an earlier one: 0009)
    Patient.objects.filter(pk=patient.pk).update(updated_at=at, sex="male")
    assert Patient.objects.get(pk=patient.pk).updated_at == at
