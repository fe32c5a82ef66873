"""FHIR R4 endpoints, with every response validated by the fhir.resources R4B models."""

from urllib.parse import urlencode, urlparse

import pytest
from django.http import QueryDict
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient

from apps.audit.models import AuditEvent
from apps.clinical.codes import VITAL_SIGNS
from apps.clinical.fhir.params import encode_cursor, search_binding
from apps.clinical.models import Observation, Patient
from apps.clinical.services import patient_soft_delete

pytestmark = pytest.mark.django_db
FHIR_JSON = "application/fhir+json"


def _bundle(response) -> Bundle:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith(FHIR_JSON)
    return Bundle.model_validate(response.json())


def _outcome(response, status: int) -> OperationOutcome:
    assert response.status_code == status, response.content[:500]
    return OperationOutcome.model_validate(response.json())


def test_capability_statement_is_public_and_valid(api):
    response = api.get("/fhir/metadata")
    assert response.status_code == 200
    statement = CapabilityStatement.model_validate(response.json())
    types = {resource.type for resource in statement.rest[0].resource}
    assert types == {"Patient", "Observation", "Encounter", "MedicationRequest"}


def test_patient_read(clinician, patient):
    response = clinician.get(f"/fhir/Patient/{patient.pk}")
    resource = FhirPatient.model_validate(response.json())
    assert resource.identifier[0].value == "MRN-000123"
    assert resource.name[0].family == "Müller"
    assert AuditEvent.objects.order_by("-seq").first().patient_id == patient.pk
    _outcome(clinician.get("/fhir/Patient/999999"), 404)
    _outcome(clinician.get("/fhir/Patient/not-a-number"), 404)


def test_patient_search_by_identifier_get_and_post(clinician, patient):
    bundle = _bundle(clinician.get("/fhir/Patient", {"identifier": "http://hospital.example.org/mrn|MRN-000123"}))
    assert [entry.resource.id for entry in bundle.entry] == [str(patient.pk)]
    assert bundle.entry[0].fullUrl.startswith("http://testserver/fhir/Patient/")
    # POST _search keeps the identifier out of the URL, the self link included.
    response = clinician.post(
        "/fhir/Patient/_search", "identifier=MRN-000123", content_type="application/x-www-form-urlencoded"
    )
    bundle = _bundle(response)
    assert [entry.resource.id for entry in bundle.entry] == [str(patient.pk)]
    assert "MRN-000123" not in bundle.link[0].url
    event = AuditEvent.objects.order_by("-seq").first()
    assert event.action == "search" and event.query_digest and "MRN" not in event.query_digest


def test_patient_search_by_name_and_birthdate(clinician, patient):
    assert len(_bundle(clinician.get("/fhir/Patient", {"family": "müll"})).entry) == 1
    assert len(_bundle(clinician.get("/fhir/Patient", {"birthdate": "1970-05-04"})).entry) == 1
    assert not _bundle(clinician.get("/fhir/Patient", {"birthdate": "1971-05-04"})).entry


def test_observation_search_pages_with_absolute_next_links(clinician, loaded):
    patient_id = Patient.objects.order_by("pk").first().pk
    expected = Observation.objects.filter(patient_id=patient_id, category="vital-signs").count()
    url = f"/fhir/Observation?patient={patient_id}&category=vital-signs&_sort=-date&_count=10"
    ids, instants = [], []
    while url:
        bundle = _bundle(clinician.get(url))
        ids += [entry.resource.id for entry in bundle.entry]
        instants += [entry.resource.effectiveDateTime for entry in bundle.entry]
        next_links = [link.url for link in bundle.link if link.relation == "next"]
        assert all(urlparse(link).scheme == "http" and urlparse(link).netloc for link in next_links)
        url = next_links[0].replace("http://testserver", "") if next_links else None
    assert len(ids) == len(set(ids)) == expected
    assert instants == sorted(instants, reverse=True)


def test_observation_search_by_code_and_date_range(clinician, loaded):
    patient_id = Patient.objects.order_by("pk").first().pk
    observation = Observation.objects.filter(patient_id=patient_id, code="8867-4").order_by("effective_at").first()
    day = observation.effective_at.date().isoformat()
    bundle = _bundle(
        clinician.get(
            "/fhir/Observation",
            {"patient": f"Patient/{patient_id}", "code": "http://loinc.org|8867-4", "date": [f"ge{day}", f"le{day}"]},
        )
    )
    assert bundle.entry
    for entry in bundle.entry:
        assert entry.resource.code.coding[0].code == "8867-4"
        assert entry.resource.valueQuantity.system == "http://unitsofmeasure.org"
        assert entry.resource.effectiveDateTime.date().isoformat() == day


def test_blood_pressure_panel_carries_components(clinician, loaded):
    panel = Observation.objects.filter(code="85354-9").first()
    bundle = _bundle(clinician.get("/fhir/Observation", {"patient": panel.patient_id, "code": "85354-9", "_count": 1}))
    components = {c.code.coding[0].code for c in bundle.entry[0].resource.component}
    assert components == {"8480-6", "8462-4"}


def test_synthetic_data_uses_all_thirteen_vital_sign_codes(loaded):
    assert set(Observation.objects.filter(category="vital-signs").values_list("code", flat=True)) == set(VITAL_SIGNS)


def test_encounter_and_medication_request_searches(clinician, loaded):
    patient_id = Patient.objects.order_by("pk").first().pk
    encounters = _bundle(clinician.get("/fhir/Encounter", {"patient": patient_id}))
    assert encounters.entry[0].resource.subject.reference == f"Patient/{patient_id}"
    with_meds = Patient.objects.filter(medication_requests__isnull=False).first()
    bundle = _bundle(clinician.get("/fhir/MedicationRequest", {"patient": with_meds.pk, "intent": "order"}))
    assert bundle.entry
    assert bundle.entry[0].resource.medicationCodeableConcept.coding[0].system.endswith("rxnorm")


@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        ("/fhir/Observation", {"patient": "1", "date": "ge2024-13-45"}, "date"),
        ("/fhir/Observation", {"patient": "1", "date": "2024-01-01T10:00"}, "date"),
        ("/fhir/Observation", {"patient": "1", "date": "xx2024-01-01"}, "date"),
        ("/fhir/Observation", {"patient": "1", "_count": "1000000"}, "_count"),
        ("/fhir/Observation", {"patient": "1", "_count": "-3"}, "_count"),
        ("/fhir/Observation", {"patient": "1", "code": "http://loinc.org|9999-9"}, "code"),
        ("/fhir/Observation", {"patient": "1", "category": "social-history"}, "category"),
        ("/fhir/Observation", {"patient": "1", "_sort": "value"}, "_sort"),
        ("/fhir/Observation", {"patient": "1", "flavour": "x"}, "flavour"),
        ("/fhir/Observation", {"category": "vital-signs"}, "patient"),
        ("/fhir/Observation", {"patient": "Practitioner/1"}, "patient"),
        ("/fhir/Observation", {"patient": "1", "_cursor": "%%%"}, "_cursor"),
        # a well-formed cursor whose values are not the types of the sort keys
        ("/fhir/Observation", {"patient": "1", "_cursor": "WyJub3QtYS1kYXRlIiwgImFiYyJd"}, "_cursor"),
        ("/fhir/Patient", {"birthdate": "1970-02-30"}, "birthdate"),
        ("/fhir/Patient", {"identifier": "a|b|c"}, "identifier"),
        ("/fhir/Encounter", {"patient": "1", "status": "dancing"}, "status"),
        ("/fhir/MedicationRequest", {"patient": "1", "intent": "maybe"}, "intent"),
    ],
)
def test_bad_search_parameters_are_operation_outcomes(clinician, path, query, parameter):
    outcome = _outcome(clinician.get(path, query), 400)
    assert outcome.issue[0].code == "invalid"
    assert outcome.issue[0].expression == [parameter]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"patient": "1", "code": ["8867-4", "2708-6"]}, "code"),  # repeats mean AND: refused, not half-read
        ({"patient": ["1", "2"]}, "patient"),
        ({"patient": "1", "category": ["vital-signs", "laboratory"]}, "category"),
    ],
)
def test_a_repeated_parameter_is_refused_not_partly_read(clinician, query, parameter):
    outcome = _outcome(clinician.get("/fhir/Observation", query), 400)
    assert outcome.issue[0].expression == [parameter]
    assert "comma" in outcome.issue[0].diagnostics


def test_a_time_without_a_zone_says_so(clinician, patient):
    outcome = _outcome(clinician.get("/fhir/Observation", {"patient": patient.pk, "date": "2024-01-01T10:00"}), 400)
    assert "time zone" in outcome.issue[0].diagnostics


@pytest.mark.parametrize(
    ("path", "query"),
    [("/fhir/Patient", {"birthdate": "9999-12-31"}), ("/fhir/Observation", {"date": "le9999-12-31"}),
     ("/fhir/Observation", {"date": "eq9999-12-31T23:59:59Z"}), ("/fhir/Observation", {"date": "lt9999-12-31T23:59Z"}),
     ("/fhir/Observation", {"date": "9999"}), ("/fhir/Observation", {"date": "gt9999-12"})],
)  # fmt: skip
def test_the_calendars_last_day_is_a_date_like_any_other(clinician, patient, path, query):
    if path.endswith("Observation"):
        query = {**query, "patient": patient.pk}
    _bundle(clinician.get(path, query))


def test_a_date_range_may_repeat_date(clinician, patient):
    _bundle(clinician.get("/fhir/Observation", {"patient": patient.pk, "date": ["ge2024-01-01", "le2024-12-31"]}))


def _post_search(client, path: str, body: dict):
    return client.post(path, urlencode(body), content_type="application/x-www-form-urlencoded")


def test_a_posted_search_combines_the_url_and_the_body(clinician, patient):
    outcome = _outcome(_post_search(clinician, "/fhir/Patient/_search?family=M%C3%BCller", {"family": "Okafor"}), 400)
    assert outcome.issue[0].expression == ["family"]
    bundle = _bundle(_post_search(clinician, "/fhir/Patient/_search?family=M%C3%BCller", {"given": "Anna"}))
    assert [entry.resource.id for entry in bundle.entry] == [str(patient.pk)]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/fhir/Patient?identifier=%00", None),
        ("/fhir/Patient?name=a%00", None),
        ("/fhir/MedicationRequest?patient=1&code=1%00", None),
        ("/fhir/Patient/_search", {"identifier": "MRN-000123\x00"}),  # a form body: POST
        ("/fhir/Patient/_search", {"name": "\x00"}),
    ],
)
def test_a_nul_character_is_a_400_outcome_not_a_database_error(clinician, patient, path, body):
    response = _post_search(clinician, path, body) if body else clinician.get(path)
    assert response["Content-Type"].startswith("application/fhir+json")
    assert "NUL" in _outcome(response, 400).issue[0].diagnostics


def test_auth_failures_are_operation_outcomes(api, issue_token, patient):
    assert _outcome(api.get(f"/fhir/Patient/{patient.pk}"), 401).issue[0].code == "login"
    token = issue_token("clinical:read")
    response = api.get(f"/fhir/Patient/{patient.pk}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert _outcome(response, 403).issue[0].code == "forbidden"


def test_only_json_is_served_on_every_fhir_path(clinician, patient):
    for path in (f"/fhir/Patient/{patient.pk}", "/fhir/metadata", "/fhir/Patient"):
        outcome = _outcome(clinician.get(path, {"_format": "xml"}), 400)
        assert outcome.issue[0].expression == ["_format"], path
    assert clinician.get(f"/fhir/Patient/{patient.pk}", {"_format": "json"}).status_code == 200


def test_unsupported_paths_and_methods(clinician):
    assert _outcome(clinician.get("/fhir/Condition"), 404).issue[0].code == "not-found"
    for base in ("/fhir", "/fhir/"):  # without its slash too: not Django's HTML redirect
        assert _outcome(clinician.get(base), 404).issue[0].code == "not-found"
    assert _outcome(clinician.post("/fhir/Patient", {}), 405).issue[0].code == "not-supported"


def test_search_within_a_query_budget(clinician, loaded, query_budget):
    patient_id = Patient.objects.order_by("pk").first().pk
    clinician.get("/fhir/Observation", {"patient": patient_id})  # rate-limit policies are read once per process
    with query_budget(7):
        _bundle(clinician.get("/fhir/Observation", {"patient": patient_id, "_count": 50}))


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/fhir/Patient/²", {}),
        ("/fhir/Observation", {"patient": "²"}),
        ("/fhir/Observation", {"patient": "1", "_count": "²"}),
        ("/fhir/Observation", {"patient": "1", "date": "0001-01-01T00:00+01:00"}),  # before the calendar in UTC
        ("/fhir/Observation", {"patient": "1", "date": "9999-12-31T23:30-01:00"}),  # after it
        ("/fhir/Patient", {"_search": "never-issued"}),
    ],
)
def test_edge_values_never_500(clinician, path, query):
    assert clinician.get(path, query).status_code in (400, 404)


def test_posted_searches_page_without_parameters_in_urls(clinician, loaded):
    from collections import Counter

    initial, _ = Counter(p.family_search[0] for p in Patient.objects.all()).most_common(1)[0]
    body = f"family={initial}&_count=2"
    first = _bundle(clinician.post("/fhir/Patient/_search", body, content_type="application/x-www-form-urlencoded"))
    next_url = next(link.url for link in first.link if link.relation == "next")
    assert "family" not in next_url and "_search=" in next_url
    second = _bundle(clinician.get(next_url.replace("http://testserver", "")))
    assert second.entry and {e.resource.id for e in second.entry}.isdisjoint({e.resource.id for e in first.entry})
    extra = _outcome(clinician.get(next_url.replace("http://testserver", "") + "&family=x"), 400)
    assert extra.issue[0].expression == ["family"]


def test_a_posted_searchs_next_page_is_only_for_the_client_that_posted_it(clinician, issue_token, loaded):
    from rest_framework.test import APIClient

    first = _bundle(_post_search(clinician, "/fhir/Patient/_search", {"_count": 2}))
    next_url = next(link.url for link in first.link if link.relation == "next").replace("http://testserver", "")
    other = issue_token("patient:read", "clinical:read", name="other-app")
    outcome = _outcome(APIClient().get(next_url, HTTP_AUTHORIZATION=f"Bearer {other}"), 400)
    assert outcome.issue[0].expression == ["_search"]
    _bundle(clinician.get(next_url))


def test_identifier_search_audits_the_patient_it_found(clinician, patient):
    clinician.get("/fhir/Patient", {"identifier": "MRN-000123"})
    assert AuditEvent.objects.order_by("-id").first().patient_id == patient.pk


@pytest.mark.parametrize("resource_type", ["Observation", "Encounter", "MedicationRequest"])
def test_a_deleted_patients_records_are_not_searchable(
    clinician, loaded, resource_type, django_capture_on_commit_callbacks
):
    """The REST lists answer 404 for a soft-deleted patient; FHIR searches by that patient find nothing, even
    right after the delete, with the patient's card still cached from a read before it."""
    patient = Patient.objects.filter(medication_requests__isnull=False).order_by("pk").first()
    assert _bundle(clinician.get(f"/fhir/{resource_type}", {"patient": patient.pk})).entry
    with django_capture_on_commit_callbacks(execute=True):
        patient_soft_delete(patient=patient)
    for _ in range(2):  # the same search again: its shape already compiled
        bundle = _bundle(clinician.get(f"/fhir/{resource_type}", {"patient": f"Patient/{patient.pk}"}))
        assert not bundle.entry
        event = AuditEvent.objects.order_by("-seq").first()
        assert (event.action, event.patient_id, event.result_count) == ("search", patient.pk, 0)
    assert not _bundle(_post_search(clinician, f"/fhir/{resource_type}/_search", {"patient": patient.pk})).entry


@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        # Arabic-Indic digits: a regex's \d matched them, and int() read them as 2024
        ("/fhir/Observation", {"date": "\u0662\u0660\u0662\u0664"}, "date"),
        ("/fhir/Observation", {"date": "ge\uff12\uff10\uff12\uff14-01-01"}, "date"),  # fullwidth
        ("/fhir/Patient", {"birthdate": "\u0661\u0669\u0667\u0660-05-04"}, "birthdate"),
    ],
)
def test_dates_take_ascii_digits_only(clinician, patient, path, query, parameter):
    if path.endswith("Observation"):
        query = {**query, "patient": patient.pk}
    assert _outcome(clinician.get(path, query), 400).issue[0].expression == [parameter]


def test_a_cursor_without_a_time_zone_is_not_one_this_server_issued(clinician, patient, vitals, recwarn):
    """The server's cursors carry aware instants; a naive one was compared in the server's zone, with a warning.
    Signed for this very search, as the server signs its own, so only the check past the signature refuses it
    (a signature refusal says "... for this search: ..." instead)."""
    query = {"patient": str(patient.pk)}
    search = search_binding("Observation", QueryDict(urlencode(query)))
    aware = encode_cursor(["2026-12-04T18:16:30+00:00", 5], search)  # the same cursor, aware: it pages
    assert clinician.get("/fhir/Observation", {**query, "_cursor": aware}).status_code == 200
    for instant in ("2026-12-04T18:16:30", "2026-12-04"):
        cursor = encode_cursor([instant, 5], search)
        issue = _outcome(clinician.get("/fhir/Observation", {**query, "_cursor": cursor}), 400).issue[0]
        assert (issue.expression, issue.diagnostics) == (["_cursor"], "not a cursor this server issued")
    assert not [w for w in recwarn if "naive datetime" in str(w.message)]


@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        ("/fhir/Patient/{id}", {"_pretty": "yes"}, "_pretty"),  # true or false, R4's standard parameter
        ("/fhir/Patient/{id}", {"identifier": "MRN-000123"}, "identifier"),
        ("/fhir/Patient/{id}", {"_format": ["xml", "json"]}, "_format"),  # the last one no longer wins
        ("/fhir/metadata", {"flavour": "x"}, "flavour"),
        ("/fhir/metadata", {"mode": "terminology"}, "mode"),
    ],
)
def test_reads_refuse_parameters_they_do_not_take(clinician, patient, path, query, parameter):
    response = clinician.get(path.format(id=patient.pk), query)
    assert _outcome(response, 400).issue[0].expression == [parameter]
    assert clinician.get("/fhir/metadata", {"mode": "full", "_format": "json"}).status_code == 200


@pytest.mark.parametrize("path", ["/fhir/Patient/{id}", "/fhir/metadata", "/fhir/Condition", "/fhir/Patient"])
def test_options_is_an_operation_outcome_like_any_unsupported_method(clinician, patient, path):
    response = clinician.options(path.format(id=patient.pk))
    assert response["Content-Type"].startswith(FHIR_JSON)
    assert _outcome(response, 405).issue[0].code == "not-supported"


@pytest.mark.parametrize(
    ("identifier", "says"),
    [
        ("MRN-000123,MRN-000999", "one identifier"),  # FHIR's OR list: read as one MRN with a comma, found nothing
        ("http://hospital.example.org/mrn|", "an MRN"),  # every patient of a system: not offered
        ("MRN 000123", "An MRN"),  # the REST lookup refuses a malformed MRN; the FHIR search looked it up
        ("\ufffd\ufffd", "An MRN"),  # a form body that was not UTF-8
    ],
)
def test_an_identifier_search_refuses_what_no_mrn_can_be(clinician, patient, identifier, says):
    for response in (clinician.get("/fhir/Patient", {"identifier": identifier}),
                     _post_search(clinician, "/fhir/Patient/_search", {"identifier": identifier})):  # fmt: skip
        outcome = _outcome(response, 400)
        assert outcome.issue[0].expression == ["identifier"] and says in outcome.issue[0].diagnostics


@pytest.mark.parametrize("code", ["|8867-4", "http://snomed.info/sct|8867-4"])
def test_a_known_code_in_another_system_is_refused_for_its_system(clinician, patient, code):
    """Not 'unknown LOINC code 8867-4': the code is known, the system named with it is what is wrong."""
    outcome = _outcome(clinician.get("/fhir/Observation", {"patient": patient.pk, "code": code}), 400)
    assert "http://loinc.org|" in outcome.issue[0].diagnostics and "unknown" not in outcome.issue[0].diagnostics
