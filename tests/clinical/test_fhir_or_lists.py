"""FHIR search values: a comma separates alternatives (OR), `\\,` is a literal comma, a repeat is AND."""

from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

import pytest
from fhir.resources.R4B.bundle import Bundle

from apps.clinical.fhir.params import FhirParamError, split_or
from apps.clinical.models import Encounter, MedicationRequest, Observation
from apps.clinical.services import observation_record, patient_create

pytestmark = pytest.mark.django_db


def _ids(response) -> set[str]:
    assert response.status_code == 200, response.content[:500]
    bundle = Bundle.model_validate(response.json())
    return {entry.resource.id for entry in bundle.entry or []}


def _refused(response, parameter: str) -> str:
    assert response.status_code == 400, response.content[:500]
    issue = response.json()["issue"][0]
    assert issue["expression"] == [parameter]
    return issue["diagnostics"]


@pytest.fixture
def people(db):
    make = lambda mrn, family, given, born: patient_create(  # noqa: E731
        mrn=mrn, family_name=family, given_name=given, birth_date=born, sex="unknown"
    )
    return {
        "smith": make("MRN-1", "Smith", "Ann", date(1970, 1, 1)),
        "jones": make("MRN-2", "Jones", "Bob", date(1980, 2, 2)),
        "brown": make("MRN-3", "Brown", "Cal", date(1990, 3, 3)),
        "comma": make("MRN-4", "Smith,Jr", "Dan", date(1970, 1, 1)),
    }


def test_split_or_reads_escapes():
    assert split_or("p", "a,b") == ["a", "b"]
    assert split_or("p", r"a\,b") == ["a,b"]
    assert split_or("p", "a\\\\,b") == ["a\\", "b"]
    for raw in ("a,", ",a", "a,,b"):
        with pytest.raises(FhirParamError):
            split_or("p", raw)
    with pytest.raises(FhirParamError):
        split_or("p", ",".join("a" * 51))


@pytest.mark.parametrize("parameter", ["name", "family"])
def test_names_are_any_of_the_list(clinician, people, parameter):
    ids = _ids(clinician.get("/fhir/Patient", {parameter: "jones,brown"}))
    assert ids == {str(people["jones"].pk), str(people["brown"].pk)}


def test_an_escaped_comma_is_part_of_the_name(clinician, people):
    assert _ids(clinician.get("/fhir/Patient", {"family": r"smith\,j"})) == {str(people["comma"].pk)}
    assert _ids(clinician.get("/fhir/Patient", {"family": "smith"})) == {str(people["smith"].pk),
                                                                      str(people["comma"].pk)}  # fmt: skip


def test_birthdates_and_ids_are_any_of_the_list(clinician, people):
    found = _ids(clinician.get("/fhir/Patient", {"birthdate": "1980-02-02,1990-03-03"}))
    assert found == {str(people["jones"].pk), str(people["brown"].pk)}
    found = _ids(clinician.get("/fhir/Patient", {"_id": f"{people['smith'].pk},Patient/{people['brown'].pk}"}))
    assert found == {str(people["smith"].pk), str(people["brown"].pk)}
    # With another parameter: AND across parameters, OR within each.
    found = _ids(clinician.get("/fhir/Patient", {"birthdate": "1970-01-01,1990-03-03", "family": "smith,jones"}))
    assert found == {str(people["smith"].pk), str(people["comma"].pk)}


@pytest.fixture
def chart(people):
    patient, now = people["smith"], datetime.now(UTC).replace(microsecond=0)
    days = [now - timedelta(days=30), now - timedelta(days=20), now - timedelta(days=10)]
    return (
        patient,
        days,
        [
            observation_record(patient=patient, code="8867-4", value=70, effective_at=days[0]),
            observation_record(patient=patient, code="2345-7", value=100, effective_at=days[1]),
            observation_record(patient=patient, code="8310-5", value=37, unit="Cel", effective_at=days[2]),
        ],
    )


def test_observation_categories_are_any_of_the_list(clinician, chart):
    patient, _, (pulse, glucose, temperature) = chart
    every = {str(pulse.pk), str(glucose.pk), str(temperature.pk)}
    assert (
        _ids(clinician.get("/fhir/Observation", {"patient": patient.pk, "category": "vital-signs,laboratory"})) == every
    )
    system = "http://terminology.hl7.org/CodeSystem/observation-category"
    query = {"patient": patient.pk, "category": f"{system}|laboratory"}
    assert _ids(clinician.get("/fhir/Observation", query)) == {str(glucose.pk)}
    assert _ids(clinician.get("/fhir/Observation", {"patient": patient.pk, "category": "vital-signs"})) == {
        str(pulse.pk), str(temperature.pk)}  # fmt: skip


def test_dates_are_any_of_the_list_and_repeats_all_of_them(clinician, chart):
    patient, days, (pulse, glucose, temperature) = chart
    either = f"{days[0].date()},{days[2].date()}"
    assert _ids(clinician.get("/fhir/Observation", {"patient": patient.pk, "date": either})) == {
        str(pulse.pk), str(temperature.pk)}  # fmt: skip
    both = {"patient": patient.pk, "date": [either, f"ge{days[1].date()}"]}
    assert _ids(clinician.get("/fhir/Observation", both)) == {str(temperature.pk)}
    # The same shape twice (compiled once): other values, other rows.
    other = f"{days[1].date()},{days[2].date()}"
    assert _ids(clinician.get("/fhir/Observation", {"patient": patient.pk, "date": other})) == {
        str(glucose.pk), str(temperature.pk)}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "parameter", "value", "shown"),
    [
        ("/fhir/Observation", "code", r"8867-4\,x", "'8867-4,x'"),
        ("/fhir/Observation", "status", r"final\,amended", "'final,amended'"),
        ("/fhir/Encounter", "status", r"finished\,x", "'finished,x'"),
        ("/fhir/MedicationRequest", "intent", r"order\,plan", "'order,plan'"),
    ],
)
def test_an_escaped_comma_is_one_value_not_two(clinician, people, path, parameter, value, shown):
    assert shown in _refused(clinician.get(path, {"patient": people["smith"].pk, parameter: value}), parameter)


@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        ("/fhir/Observation", {"code": "8867-4,"}, "code"),
        ("/fhir/Observation", {"category": "vital-signs,,laboratory"}, "category"),
        ("/fhir/Encounter", {"status": ",finished"}, "status"),
        ("/fhir/Patient", {"name": "smith,"}, "name"),
        ("/fhir/Patient", {"birthdate": "1970-01-01,"}, "birthdate"),
        ("/fhir/Patient", {"_id": "1,x"}, "_id"),
    ],
)
def test_an_empty_or_bad_alternative_is_refused(clinician, people, path, query, parameter):
    if not path.endswith("Patient"):
        query = {"patient": people["smith"].pk, **query}
    _refused(clinician.get(path, query), parameter)


@pytest.mark.parametrize("resource_type", ["Observation", "Encounter", "MedicationRequest"])
def test_several_patients_in_one_search_say_so(clinician, people, resource_type):
    diagnostics = _refused(clinician.get(f"/fhir/{resource_type}", {"patient": f"{people['smith'].pk},1"}), "patient")
    assert "one patient per search" in diagnostics


def test_status_and_intent_lists_still_read_as_any(clinician, people):
    """Already OR lists before: unchanged."""
    patient = people["smith"]
    assert Encounter.Status.FINISHED in Encounter.Status.values
    _ids(clinician.get("/fhir/Encounter", {"patient": patient.pk, "status": "finished,in-progress"}))
    statuses = ",".join(MedicationRequest.Status.values[:2])
    _ids(clinician.get("/fhir/MedicationRequest", {"patient": patient.pk, "intent": "order,plan", "status": statuses}))
    _ids(clinician.get("/fhir/Observation", {"patient": patient.pk, "status": ",".join(Observation.Status.values)}))


def test_a_posted_searchs_pages_never_put_its_values_in_a_url(clinician, people):
    """Names and birth dates stay out of every link of a posted search, page after page, also when part of the
    search came in the URL of the POST itself."""
    body = urlencode({"birthdate": "1970-01-01,1980-02-02,1990-03-03", "_count": 1})
    response = clinician.post("/fhir/Patient/_search?family=smith%2Cjones%2Cbrown", body,
                              content_type="application/x-www-form-urlencoded")  # fmt: skip
    seen, pages = set(), 0
    while True:
        assert response.status_code == 200, response.content[:300]
        links = {link["relation"]: link["url"] for link in response.json()["link"]}
        for url in links.values():
            for leaked in ("smith", "jones", "brown", "1970", "1980", "1990", "family", "birthdate"):
                assert leaked not in url.lower(), url
        seen |= {entry["resource"]["id"] for entry in response.json().get("entry", [])}
        pages += 1
        if "next" not in links:
            break
        response = clinician.get(links["next"].replace("http://testserver", ""))
    assert pages == 4 and seen == {str(patient.pk) for patient in people.values()}  # Smith,Jr is a Smith too


def test_an_or_list_pages_through_its_next_links(clinician, chart):
    patient, days, (pulse, _, temperature) = chart
    query = {"patient": patient.pk, "date": f"{days[0].date()},{days[2].date()}", "category": "vital-signs,laboratory",
             "_count": 1}  # fmt: skip
    response, seen = clinician.get("/fhir/Observation", query), []
    while True:
        body = response.json()
        seen += [entry["resource"]["id"] for entry in body.get("entry", [])]
        links = {link["relation"]: link["url"] for link in body["link"]}
        if "next" not in links:
            break
        response = clinician.get(links["next"].replace("http://testserver", ""))
    assert seen == [str(temperature.pk), str(pulse.pk)]  # newest first, each once
