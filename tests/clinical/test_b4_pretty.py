"""`_pretty`, R4's standard result parameter, on every FHIR interaction and in strict handling (the default).

Before: strict handling refused it with a 400 on searches, reads and metadata (lenient reads too), so a client that
sends it on every call (many FHIR tools do) could not use the server. Now it is taken and ignored, as `_format`
is; a malformed one (twice, or not true/false) is still refused.
"""

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.clinical.fhir import views

pytestmark = pytest.mark.django_db

STRICT = {"HTTP_PREFER": "handling=strict"}


@pytest.fixture(autouse=True)
def _fresh_shapes():
    views.compiled_searches.clear()
    yield
    views.compiled_searches.clear()


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    return [entry.resource.id for entry in Bundle.model_validate(response.json()).entry or []]


@pytest.mark.parametrize("prefer", [{}, STRICT])
@pytest.mark.parametrize("pretty", ["true", "false"])
def test_a_strict_search_takes_pretty_and_answers_as_without_it(clinician, patient, vitals, prefer, pretty):
    plain = clinician.get("/fhir/Observation", {"patient": patient.pk, "_count": 3}, **prefer)
    response = clinician.get("/fhir/Observation", {"patient": patient.pk, "_count": 3, "_pretty": pretty}, **prefer)
    assert _ids(response) == _ids(plain) and len(_ids(plain)) == 3
    links = {link["relation"]: link["url"] for link in response.json()["link"]}
    assert clinician.get(f"{links['next']}&_pretty={pretty}", **prefer).status_code == 200  # the cursor still binds


def test_reads_metadata_totals_and_posted_searches_take_pretty(clinician, patient, vitals):
    for path in (f"/fhir/Patient/{patient.pk}", f"/fhir/Observation/{vitals[0].pk}", "/fhir/metadata"):
        response = clinician.get(path, {"_pretty": "true"}, **STRICT)
        assert response.status_code == 200, (path, response.content[:300])
    total = clinician.get("/fhir/Observation", {"patient": patient.pk, "_summary": "count", "_pretty": "false"})
    assert total.status_code == 200 and total.json()["total"] == len(vitals)
    form = f"patient={patient.pk}&_pretty=true"
    posted = clinician.post(
        "/fhir/Observation/_search", form, content_type="application/x-www-form-urlencoded", **STRICT
    )
    assert len(_ids(posted)) == len(vitals)


@pytest.mark.parametrize("query", [{"_pretty": "yes"}, {"_pretty": ["true", "false"]}])
def test_a_malformed_pretty_is_still_refused(clinician, patient, query):
    for path, extra in ((f"/fhir/Patient/{patient.pk}", {}), ("/fhir/Observation", {"patient": patient.pk})):
        response = clinician.get(path, {**extra, **query}, **STRICT)
        assert response.status_code == 400, response.content[:300]
        assert OperationOutcome.model_validate(response.json()).issue[0].expression == ["_pretty"]
