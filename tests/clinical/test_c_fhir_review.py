"""FHIR search edge cases found by an adversarial review: what a count-only search, a cursor and a
sub-second date mean, each checked against the rows the database holds."""

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from django.http import QueryDict
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.clinical.fhir.params import encode_cursor, search_binding
from apps.clinical.services import observation_record

pytestmark = pytest.mark.django_db


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content[:300]
    return [int(entry.resource.id) for entry in Bundle.model_validate(response.json()).entry or []]


def _refused(response, parameter: str) -> OperationOutcome:
    assert response.status_code == 400, response.content[:300]
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].expression == [parameter]
    return outcome


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("_summary=count&_count=abc", "_count"),
        ("_summary=count&_count=-1", "_count"),
        ("_summary=count&_count=1000000", "_count"),
        ("_summary=count&_cursor=%25%25", "_cursor"),
        ("_count=0&_cursor=WzFd", "_cursor"),  # a count has no pages: a cursor with it is not one the server issued
    ],
)
def test_a_count_only_search_refuses_what_it_would_otherwise_ignore(clinician, patient, query, parameter):
    """`_summary=count` and `_count=0` answered the total and ignored a malformed `_count` or a `_cursor`."""
    _refused(clinician.get(f"/fhir/Observation?patient={patient.pk}&{query}"), parameter)
    _refused(clinician.get(f"/fhir/Patient?{query}"), parameter)


@pytest.mark.parametrize("values", [[True], [False], ["2024-01-01T00:00:00+00:00", True]])
def test_a_cursor_of_booleans_is_not_one_this_server_issued(clinician, patient, values):
    """JSON `true` is a Python int: `[true]` was read as the id 1 and paged from there. Signed for this very
    search, as the server signs its own, so the check past the signature refuses it (a signature refusal says
    "... for this search: ..." instead)."""
    resource, query = ("Patient", {}) if len(values) == 1 else ("Observation", {"patient": str(patient.pk)})
    cursor = encode_cursor(values, search_binding(resource, QueryDict(urlencode(query))))
    outcome = _refused(clinician.get(f"/fhir/{resource}", {**query, "_cursor": cursor}), "_cursor")
    assert outcome.issue[0].diagnostics == "not a cursor this server issued"


@pytest.fixture
def half_second(patient):
    """An observation at 10:00:00.5 and one at 10:00:00.9, in the same second."""
    at = datetime(2024, 3, 5, 10, 0, 0, 500000, tzinfo=UTC)
    return [
        observation_record(patient=patient, code="8867-4", value=70, effective_at=at),
        observation_record(patient=patient, code="8867-4", value=71, effective_at=at.replace(microsecond=900000)),
    ]


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("eq2024-03-05T10:00:00.5Z", [0]),  # a tenth of a second: [.5, .6)
        ("eq2024-03-05T10:00:00.50Z", [0]),
        ("eq2024-03-05T10:00:00.500000Z", [0]),  # a microsecond
        ("eq2024-03-05T10:00:00.2Z", []),  # read as the second from .2 to 1.2, it found both
        ("eq2024-03-05T10:00:00.9Z", [1]),
        ("gt2024-03-05T10:00:00.4Z", [0, 1]),  # read as ending at 1.4, it found neither
        ("lt2024-03-05T10:00:00.9Z", [0]),
        ("le2024-03-05T10:00:00.5Z", [0]),
        ("ne2024-03-05T10:00:00.5Z", [1]),
        ("sa2024-03-05T10:00:00.5Z", [1]),
        ("eq2024-03-05T10:00:00Z", [0, 1]),  # a whole second, as before
        ("eq2024-03-05T10:00Z", [0, 1]),
    ],
)
def test_a_date_with_fractional_seconds_names_that_precision(clinician, patient, half_second, date, expected):
    response = clinician.get("/fhir/Observation", {"patient": patient.pk, "_sort": "date", "date": date})
    assert _ids(response) == [half_second[i].pk for i in expected]


@pytest.mark.parametrize("accept", ["text/html,application/xhtml+xml,*/*;q=0.8", "application/fhir+xml", "text/html"])
@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [("json", "application/fhir+json"), ("application/fhir+json", "application/fhir+json"),
     ("application/json", "application/json")],
)  # fmt: skip
def test_format_overrides_the_accept_header(clinician, patient, accept, fmt, media_type):
    """FHIR: `_format` overrides Accept, so a browser (Accept: text/html) can read the JSON. It was a 406."""
    for path in (f"/fhir/Patient/{patient.pk}", "/fhir/Patient", "/fhir/metadata"):
        response = clinician.get(path, {"_format": fmt}, HTTP_ACCEPT=accept)
        assert response.status_code == 200, (path, response.content[:300])
        assert response["Content-Type"].split(";")[0] == media_type
    assert clinician.get(f"/fhir/Patient/{patient.pk}", HTTP_ACCEPT="application/fhir+xml").status_code == 406
    assert clinician.get(f"/fhir/Patient/{patient.pk}", {"_format": "xml"}, HTTP_ACCEPT=accept).status_code in (
        400,
        406,
    )


def _lenient_get(client, path: str, query: dict, prefer: str = "handling=lenient"):
    return client.get(path, query, HTTP_PREFER=prefer)


@pytest.mark.parametrize(
    "prefer", ["handling=lenient", "return=minimal, handling=lenient", "Handling = Lenient", 'handling="lenient"']
)
def test_a_lenient_search_ignores_unknown_parameters_and_says_so(clinician, patient, half_second, prefer):
    """FHIR's `Prefer: handling=lenient`: unknown parameters are ignored, the self link names the parameters
    the search used, and an OperationOutcome entry (search mode `outcome`) names those it left out. It was a
    400, as without the header (strict stays the default). Only a parameter whose base name is unknown is
    ignored (`foo`, `bar:exact`); a known one with a modifier is refused (test_m1_fhir_mends.py)."""
    query = {"patient": patient.pk, "foo": "1", "bar:exact": "heart", "_count": 1, "_sort": "date"}
    bundle = Bundle.model_validate(_lenient_get(clinician, "/fhir/Observation", query, prefer).json())
    matches = [entry for entry in bundle.entry if entry.search.mode == "match"]
    assert [int(entry.resource.id) for entry in matches] == [half_second[0].pk]
    (outcome,) = [entry.resource for entry in bundle.entry if entry.search.mode == "outcome"]
    assert [issue.expression for issue in outcome.issue] == [["bar:exact"], ["foo"]]
    assert {issue.severity for issue in outcome.issue} == {"warning"}
    links = {link.relation: link.url for link in bundle.link}
    for url in links.values():
        assert "foo" not in url and "bar%3Aexact" not in url and "bar:exact" not in url
    assert f"patient={patient.pk}" in links["self"] and links["self"].startswith("http://testserver/fhir/Observation?")
    second = Bundle.model_validate(clinician.get(links["next"].removeprefix("http://testserver")).json())
    assert [int(entry.resource.id) for entry in second.entry] == [half_second[1].pk]


def test_strict_handling_still_refuses_unknown_parameters(clinician, patient):
    for prefer in (None, "handling=strict", "handling=lenientish"):
        headers = {"HTTP_PREFER": prefer} if prefer else {}
        response = clinician.get("/fhir/Observation", {"patient": patient.pk, "foo": "1"}, **headers)
        _refused(response, "foo")


def test_a_lenient_search_still_refuses_a_bad_value_of_a_known_parameter(clinician, patient):
    response = _lenient_get(clinician, "/fhir/Observation", {"patient": patient.pk, "foo": "1", "date": "2024-13"})
    _refused(response, "date")
    _refused(_lenient_get(clinician, "/fhir/Observation", {"foo": "1"}), "patient")


def test_a_lenient_count_and_posted_search_report_what_they_ignored(clinician, patient, half_second):
    response = _lenient_get(clinician, "/fhir/Observation", {"patient": patient.pk, "foo": "1", "_summary": "count"})
    bundle = Bundle.model_validate(response.json())
    assert bundle.total == 2 and [entry.search.mode for entry in bundle.entry] == ["outcome"]
    assert bundle.link[0].url == f"http://testserver/fhir/Observation?patient={patient.pk}&_summary=count"
    response = clinician.post(
        "/fhir/Patient/_search", "identifier=MRN-000123&nickname:exact=x",
        content_type="application/x-www-form-urlencoded", HTTP_PREFER="handling=lenient",
    )  # fmt: skip
    bundle = Bundle.model_validate(response.json())
    assert [entry.resource.id for entry in bundle.entry if entry.search.mode == "match"] == [str(patient.pk)]
    assert bundle.link[0].url == "http://testserver/fhir/Patient"  # a posted search's parameters stay out of URLs


def test_an_id_with_a_leading_zero_names_no_patient(clinician, patient):
    """FHIR ids are strings: `Patient/0<id>` answered the patient whose id is `<id>`, a resource whose id is not
    the one read (and `_id=0<id>` found it too)."""
    padded = f"0{patient.pk}"
    response = clinician.get(f"/fhir/Patient/{padded}")
    assert response.status_code == 404 and OperationOutcome.model_validate(response.json()).issue[0].code == "not-found"
    _refused(clinician.get("/fhir/Patient", {"_id": padded}), "_id")
    _refused(clinician.get("/fhir/Observation", {"patient": f"Patient/{padded}"}), "patient")
    assert clinician.get(f"/fhir/Patient/{patient.pk}").json()["id"] == str(patient.pk)


def test_a_get_search_by_identifier_pages_without_the_mrn_in_its_next_link(clinician, patient):
    """One MRN in two identifier systems: `Patient?identifier=<MRN>&_count=1` has a next page, whose link
    repeated the MRN (the server writing it into a URL, for the client's access and proxy logs)."""
    from datetime import date

    from apps.clinical.services import patient_create

    other = patient_create(mrn="MRN-000123", family_name="Okafor", given_name="Ada", birth_date=date(1980, 1, 2),
                           identifier_system="urn:oid:1.2.3.4")  # fmt: skip
    first = Bundle.model_validate(clinician.get("/fhir/Patient", {"identifier": "MRN-000123", "_count": 1}).json())
    next_url = next(link.url for link in first.link if link.relation == "next")
    assert next_url.startswith("http://testserver/fhir/Patient?") and "MRN" not in next_url and "_search=" in next_url
    second = Bundle.model_validate(clinician.get(next_url.removeprefix("http://testserver")).json())
    ids = [entry.resource.id for entry in first.entry + second.entry]
    assert ids == [str(patient.pk), str(other.pk)] and not [link for link in second.link if link.relation == "next"]
    assert all("MRN" not in link.url for link in second.link)


@pytest.fixture
def born(db):
    """Patients born across the turn of 1979/1980 and in May 1970 (and one deleted, who never appears)."""
    from datetime import date

    from apps.clinical.services import patient_create, patient_soft_delete

    days = [date(1970, 5, 4), date(1970, 5, 31), date(1979, 12, 31), date(1980, 1, 1), date(1980, 6, 15)]
    people = {
        day: patient_create(mrn=f"B-{i}", family_name="Born", given_name="Ada", birth_date=day)
        for i, day in enumerate(days)
    }
    patient_soft_delete(patient=patient_create(mrn="B-gone", family_name="Born", given_name="Gone",
                                               birth_date=date(1980, 1, 1)))  # fmt: skip
    return people


def _born_ids(client, query) -> set[int]:
    response = client.get("/fhir/Patient", {**query, "_count": 1000})
    return {int(entry.resource.id) for entry in Bundle.model_validate(response.json()).entry or []}


@pytest.mark.parametrize(
    ("birthdate", "expected"),
    [
        ("1970", ["1970-05-04", "1970-05-31"]),
        ("1970-05", ["1970-05-04", "1970-05-31"]),
        ("eq1980-01", ["1980-01-01"]),
        ("ne1970", ["1979-12-31", "1980-01-01", "1980-06-15"]),
        ("ge1980", ["1980-01-01", "1980-06-15"]),
        ("gt1979-12", ["1980-01-01", "1980-06-15"]),
        ("gt1979-12-31", ["1980-01-01", "1980-06-15"]),
        ("sa1979", ["1980-01-01", "1980-06-15"]),
        ("lt1980", ["1970-05-04", "1970-05-31", "1979-12-31"]),
        ("eb1970-05-31", ["1970-05-04"]),
        ("le1970-05-04", ["1970-05-04"]),
        ("le1979", ["1970-05-04", "1970-05-31", "1979-12-31"]),
        ("ge1970-05-05", ["1970-05-31", "1979-12-31", "1980-01-01", "1980-06-15"]),
        ("1970,ge1980-06", ["1970-05-04", "1970-05-31", "1980-06-15"]),  # OR, mixing a day range and a year
        ("ge9999", []),
        ("lt0001-02", []),
    ],
)
def test_birthdate_takes_prefixes_and_partial_dates(clinician, born, birthdate, expected):
    """`birthdate` is a FHIR date parameter (the CapabilityStatement says so): `ge1980` or `1970-05` was a 400,
    "expected an exact date"."""
    from datetime import date

    assert _born_ids(clinician, {"birthdate": birthdate}) == {born[date.fromisoformat(day)].pk for day in expected}


def test_a_repeated_birthdate_is_a_range_and_counts_agree(clinician, born):
    from datetime import date

    query = {"birthdate": ["ge1979-12-31", "lt1980-06"]}
    expected = {born[date(1979, 12, 31)].pk, born[date(1980, 1, 1)].pk}
    assert _born_ids(clinician, query) == expected
    assert Bundle.model_validate(clinician.get("/fhir/Patient", {**query, "_summary": "count"}).json()).total == 2
    posted = clinician.post("/fhir/Patient/_search", "birthdate=ge1979-12-31&birthdate=lt1980-06&family=born",
                            content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert {int(entry.resource.id) for entry in Bundle.model_validate(posted.json()).entry} == expected
    for bad in ("ge1980-01-01T00:00Z", "gt1980-13", "xx1980", "1980-02-30", "ap"):
        _refused(clinician.get("/fhir/Patient", {"birthdate": bad}), "birthdate")
