"""FHIR `Patient?identifier=system|MRN` (GET and POST _search) with patients left in colliding spellings of one
system (migrations 0002/0003): the searchset lists every one of them, so the client sees the ambiguity; it
listed only the one in the normal spelling, whatever spelling was typed."""

from urllib.parse import urlencode

import pytest
from fhir.resources.R4B.bundle import Bundle

from tests.clinical.test_f16_colliding_identifier_spellings import MRN, SPELLINGS, colliding  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_an_identifier_search_lists_every_colliding_patient(clinician, colliding, spelling):  # noqa: F811
    expected = [str(patient.pk) for patient in colliding]
    got = clinician.get("/fhir/Patient", {"identifier": f"{spelling}|{MRN}"})
    assert got.status_code == 200, got.content[:300]
    bundle = Bundle.model_validate(got.json())
    assert sorted(entry.resource.id for entry in bundle.entry or []) == sorted(expected)
    form = urlencode({"identifier": f"{spelling}|{MRN}"})
    posted = clinician.post("/fhir/Patient/_search", form, content_type="application/x-www-form-urlencoded")
    assert posted.status_code == 200, posted.content[:300]
    bundle = Bundle.model_validate(posted.json())
    assert sorted(entry.resource.id for entry in bundle.entry or []) == sorted(expected)


def test_an_identifier_search_without_a_system_is_unchanged(clinician, colliding):  # noqa: F811
    got = Bundle.model_validate(clinician.get("/fhir/Patient", {"identifier": MRN}).json())
    assert sorted(entry.resource.id for entry in got.entry or []) == sorted(str(p.pk) for p in colliding)
