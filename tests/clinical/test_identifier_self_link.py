"""A GET search by identifier: the server writes the MRN into no link of its Bundle, the self link included
(it repeated the URL the client sent, MRN and all, though the next link already paged by an opaque key)."""

from datetime import date

import pytest
from fhir.resources.R4B.bundle import Bundle

from apps.clinical.services import patient_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(db):
    return patient_create(mrn="MRN-SELF-1", family_name="Okafor", given_name="Ada", birth_date=date(1980, 1, 2))


@pytest.mark.parametrize(
    "extra",
    [{}, {"_count": "0"}, {"_summary": "count"}, {"nickname": "x"}],
    ids=["page", "count-zero", "summary-count", "lenient-ignored"],
)
def test_no_link_of_an_identifier_search_carries_the_mrn(clinician, patient, extra):
    headers = {"HTTP_PREFER": "handling=lenient"} if "nickname" in extra else {}
    response = clinician.get("/fhir/Patient", {"identifier": "MRN-SELF-1", **extra}, **headers)
    assert response.status_code == 200, response.content[:300]
    bundle = Bundle.model_validate(response.json())
    (self_link,) = [link for link in bundle.link if link.relation == "self"]
    assert self_link.url == "http://testserver/fhir/Patient"
    assert all("MRN-SELF-1" not in link.url for link in bundle.link)
    if not extra:
        assert [entry.resource.id for entry in bundle.entry] == [str(patient.pk)]


def test_other_get_searches_keep_the_url_the_client_sent(clinician, patient):
    bundle = Bundle.model_validate(clinician.get("/fhir/Patient", {"family": "okaf"}).json())
    (self_link,) = [link for link in bundle.link if link.relation == "self"]
    assert self_link.url == "http://testserver/fhir/Patient?family=okaf"
