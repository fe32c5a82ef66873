"""FHIR `Patient/[id]/$everything`: the Patient and its compartment in one searchset Bundle, each resource as its
own read or search serves it, validated by the fhir.resources R4B models; paged, windowed, filtered by type,
cached (a write invalidates), audited once a request (from the cache too), and its bad input an OperationOutcome."""

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.medicationrequest import MedicationRequest as FhirMedicationRequest
from fhir.resources.R4B.observation import Observation as FhirObservation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient

from apps.audit.models import AuditEvent
from apps.clinical.fhir.params import parse_date
from apps.clinical.models import MedicationRequest, Patient
from apps.clinical.services import observation_record, patient_soft_delete

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"
FHIR_JSON = "application/fhir+json"
MODELS = {
    "Patient": FhirPatient,
    "Observation": FhirObservation,
    "Encounter": FhirEncounter,
    "MedicationRequest": FhirMedicationRequest,
}


def _everything(patient_id: int | str) -> str:
    return f"/fhir/Patient/{patient_id}/$everything"


def _bundle(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    bundle = Bundle.model_validate(body)
    assert bundle.type == "searchset"
    for entry in bundle.entry or []:
        if entry.search.mode == "outcome":
            continue
        assert entry.search.mode == "match"
        resource = entry.resource.model_dump()
        MODELS[resource["resourceType"]].model_validate(resource)
        assert entry.fullUrl == f"http://testserver/fhir/{resource['resourceType']}/{resource['id']}"
    return body


def _resources(body: dict) -> list[dict]:
    return [entry["resource"] for entry in body.get("entry", []) if entry["search"]["mode"] == "match"]


def _outcome(response, status: int = 400) -> OperationOutcome:
    assert response.status_code == status, response.content[:500]
    return OperationOutcome.model_validate(response.json())


def _separately(client, patient_id: int, **window) -> list[dict]:
    """What a client makes today: the read and the three searches (dates where the search takes them)."""
    found = [client.get(f"/fhir/Patient/{patient_id}").json()]
    dates = [f"{prefix}{window[name]}" for prefix, name in (("ge", "start"), ("le", "end")) if name in window]
    for resource_type in ("Observation", "Encounter", "MedicationRequest"):
        query = {"patient": patient_id, "_count": 1000}
        if resource_type != "MedicationRequest" and dates:
            query["date"] = dates
        found += _resources(_bundle(client.get(f"/fhir/{resource_type}", query)))
    return found


@pytest.fixture
def charted(loaded) -> Patient:
    """A loaded patient with observations, encounters and medication requests."""
    return Patient.objects.filter(medication_requests__isnull=False, encounters__isnull=False).order_by("pk").first()


def test_the_bundle_is_the_read_and_the_three_searches(clinician, charted):
    body = _bundle(clinician.get(_everything(charted.pk), {"_count": 1000}))
    found = _resources(body)
    assert found == _separately(clinician, charted.pk)
    assert {r["resourceType"] for r in found} == {"Patient", "Observation", "Encounter", "MedicationRequest"}
    assert body["total"] == len(found)
    assert [link["relation"] for link in body["link"]] == ["self"]


def test_pages_follow_absolute_next_links_to_the_same_entries(clinician, charted):
    whole = _resources(_bundle(clinician.get(_everything(charted.pk), {"_count": 1000})))
    paged, url, pages = [], f"http://testserver{_everything(charted.pk)}?_count=7", 0
    while url:
        assert url.startswith(f"http://testserver/fhir/Patient/{charted.pk}/$everything?")
        body = _bundle(clinician.get(url))
        assert body["total"] == len(whole)
        assert len(_resources(body)) <= 7
        paged += _resources(body)
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
        pages += 1
    assert paged == whole and pages == -(-len(whole) // 7)


def test_a_posted_request_keeps_its_parameters_out_of_urls(clinician, charted):
    whole = _resources(_bundle(clinician.get(_everything(charted.pk), {"_count": 1000, "start": "2000"})))
    body = _bundle(clinician.post(_everything(charted.pk), "start=2000&_count=5", content_type=FORM))
    assert body["link"][0]["url"] == f"http://testserver{_everything(charted.pk)}"
    paged = _resources(body)
    while nexts := [link["url"] for link in body["link"] if link["relation"] == "next"]:
        assert set(parse_qs(urlsplit(nexts[0]).query)) == {"_search", "_cursor"}
        body = _bundle(clinician.get(nexts[0]))
        paged += _resources(body)
    assert paged == whole


def test_the_window_is_the_searches_dates_and_authored_on(clinician, charted):
    """Observations and Encounters as their searches answer date=ge<start>&date=le<end>; MedicationRequests, whose
    search takes no date, by authoredOn within the same days (the hospital's)."""
    authored = sorted(MedicationRequest.objects.filter(patient=charted).values_list("authored_at", flat=True))
    day = timezone.localdate(authored[len(authored) // 2])
    window = {"start": day.isoformat(), "end": day.isoformat()}
    found = _resources(_bundle(clinician.get(_everything(charted.pk), {**window, "_count": 1000})))
    _, low, high = parse_date("start", window["start"])
    inside = set(
        MedicationRequest.objects.filter(patient=charted, authored_at__gte=low, authored_at__lt=high).values_list(
            "pk", flat=True
        )
    )
    assert inside
    separately = _separately(clinician, charted.pk, **window)
    assert found == [r for r in separately if r["resourceType"] != "MedicationRequest" or int(r["id"]) in inside]
    everything = _resources(_bundle(clinician.get(_everything(charted.pk), {"_count": 1000})))
    assert found[0]["resourceType"] == "Patient" and len(found) < len(everything)
    assert {r["resourceType"] for r in found} == {"Patient", "Observation", "Encounter", "MedicationRequest"}


def test_type_picks_the_resource_types(clinician, charted):
    found = _resources(_bundle(clinician.get(_everything(charted.pk), {"_type": "Encounter,Patient", "_count": 1000})))
    assert found[0]["resourceType"] == "Patient"
    assert {r["resourceType"] for r in found[1:]} == {"Encounter"}
    encounters = _resources(_bundle(clinician.get("/fhir/Encounter", {"patient": charted.pk, "_count": 1000})))
    assert found[1:] == encounters
    body = _bundle(clinician.get(_everything(charted.pk), {"_type": "MedicationRequest", "_count": 2}))
    assert {r["resourceType"] for r in _resources(body)} == {"Patient", "MedicationRequest"}
    assert body["total"] == 1 + MedicationRequest.objects.filter(patient=charted).count()


def test_the_patient_is_in_whatever_type_names(clinician, charted):
    """R4: "at a minimum, the patient resource itself is returned"; `_type=Observation` served Observations only."""
    found = _resources(_bundle(clinician.get(_everything(charted.pk), {"_type": "Observation", "_count": 1000})))
    assert found[0] == clinician.get(f"/fhir/Patient/{charted.pk}").json()
    observations = _resources(_bundle(clinician.get("/fhir/Observation", {"patient": charted.pk, "_count": 1000})))
    assert found[1:] == observations


def test_a_repeated_type_is_one_comma_list(clinician, charted):
    """R4 `_type` is 0..*, each a comma list: repeating it was a 400."""
    url = f"http://testserver{_everything(charted.pk)}"
    repeated = _pages(clinician, f"{url}?_type=Encounter&_type=MedicationRequest,Patient&_count=3")
    listed = _pages(clinician, f"{url}?_type=Encounter,MedicationRequest,Patient&_count=3")
    assert [_resources(body) for body in repeated] == [_resources(body) for body in listed]
    assert [body["total"] for body in repeated] == [body["total"] for body in listed]
    found = [r for body in listed for r in _resources(body)]
    assert len(found) == listed[0]["total"] and len(listed) > 1
    assert {r["resourceType"] for r in found} == {"Patient", "Encounter", "MedicationRequest"}


def test_unknown_patients_are_404s_a_deleted_one_410_as_its_read(clinician, patient, elsewhere):
    assert _outcome(clinician.get(_everything(patient.pk + 1000)), 404).issue[0].code == "not-found"
    assert _outcome(clinician.get(_everything(f"0{patient.pk}")), 404).issue[0].code == "not-found"
    assert _bundle(clinician.get(_everything(patient.pk)))["total"] == 1  # cached now
    elsewhere(lambda: patient_soft_delete(patient=patient))
    everything = clinician.get(_everything(patient.pk))
    record = AuditEvent.objects.order_by("-seq").first()
    assert (record.action, record.outcome, record.resource_id) == ("search", "not_found", str(patient.pk))
    read = clinician.get(f"/fhir/Patient/{patient.pk}")
    assert _outcome(everything, 410).issue[0].code == "deleted"  # it was a 404
    assert (everything.status_code, everything.json()) == (read.status_code, read.json())


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"patient": "1"}, "patient"),
        ({"_since": "2024-01-01"}, "_since"),  # an instant: to the second, with a zone
        ({"_type": "Condition"}, "_type"),
        ({"start": "ge2024-01-01"}, "start"),
        ({"start": "2024-01-01T10:00:00Z"}, "start"),
        ({"end": "2024-02-30"}, "end"),
        ({"start": "2024-03-01", "end": "2024-02-01"}, "end"),
        ({"_count": "0"}, "_count"),
        ({"_count": "many"}, "_count"),
        ({"_cursor": "abc.def"}, "_cursor"),
        ({"_type": ""}, "_type"),
        ({"_summary": "count"}, "_summary"),
    ],
)
def test_bad_parameters_are_operation_outcomes(clinician, patient, query, parameter):
    issue = _outcome(clinician.get(_everything(patient.pk), query)).issue[0]
    assert issue.expression == [parameter], issue


def test_since_says_what_it_takes(clinician, patient):
    issue = _outcome(clinician.get(_everything(patient.pk), {"_since": "2024-01-01"})).issue[0]
    assert "expected an instant" in issue.diagnostics


def test_a_repeated_parameter_and_another_requests_cursor_are_refused(clinician, charted):
    assert _outcome(clinician.get(f"{_everything(charted.pk)}?start=2020&start=2021")).issue[0].expression == ["start"]
    body = _bundle(clinician.get(_everything(charted.pk), {"_count": 2}))
    cursor = parse_qs(urlsplit(body["link"][1]["url"]).query)["_cursor"][0]
    other = Patient.objects.exclude(pk=charted.pk).order_by("pk").first()
    assert _outcome(clinician.get(_everything(other.pk), {"_count": 2, "_cursor": cursor})).issue[0].expression == [
        "_cursor"
    ]
    assert _outcome(clinician.get(_everything(charted.pk), {"_count": 2, "_cursor": cursor, "start": "2000"}))


def test_lenient_handling_ignores_unknown_parameters_and_says_so(clinician, patient):
    lenient = {"HTTP_PREFER": "handling=lenient"}
    body = _bundle(clinician.get(_everything(patient.pk), {"colour": "blue"}, **lenient))
    assert body["entry"][-1]["search"]["mode"] == "outcome"
    assert body["link"][0]["url"] == f"http://testserver{_everything(patient.pk)}"
    assert _outcome(clinician.get(_everything(patient.pk), {"colour": "blue"}, HTTP_PREFER="handling=strict"))
    assert _outcome(clinician.get(_everything(patient.pk), {"_elements": "id"}, **lenient))  # a `_` one: refused


def test_one_audit_record_a_request_a_cached_answer_too(clinician, charted):
    before = AuditEvent.objects.count()
    first = _bundle(clinician.get(_everything(charted.pk)))
    second = _bundle(clinician.get(_everything(charted.pk)))
    assert first == second
    events = list(AuditEvent.objects.order_by("seq")[before:])
    assert [(e.action, e.patient_id, e.resource_type) for e in events] == [("search", charted.pk, "Patient")] * 2
    assert [e.served_from_cache for e in events] == [False, True]
    assert [e.result_count for e in events] == [len(first["entry"])] * 2
    assert str(charted.mrn) not in str([e.__dict__ for e in events])


def test_a_write_to_the_patient_is_in_the_next_answer(clinician, patient, vitals, elsewhere):
    assert len(_resources(_bundle(clinician.get(_everything(patient.pk))))) == 1 + len(vitals)
    _bundle(clinician.get(_everything(patient.pk)))
    assert AuditEvent.objects.order_by("-seq").first().served_from_cache
    written = []
    elsewhere(lambda: written.append(observation_record(patient=patient, code="8867-4", value=131,
                                                        effective_at=datetime.now(UTC))))  # fmt: skip
    found = _resources(_bundle(clinician.get(_everything(patient.pk))))
    assert found[1]["id"] == str(written[0].pk) and len(found) == 2 + len(vitals)
    assert not AuditEvent.objects.order_by("-seq").first().served_from_cache


def test_scopes_are_the_reads_and_the_searches(api, issue_token, patient, vitals):
    assert _outcome(api.get(_everything(patient.pk)), 401).issue[0].code == "login"
    for scope in ("patient:read", "clinical:read"):
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(scope)}")
        assert _outcome(api.get(_everything(patient.pk)), 403).issue[0].code == "forbidden"
        refusal = AuditEvent.objects.order_by("-seq").first()
        assert (refusal.action, refusal.outcome, refusal.patient_id) == ("search", "denied", patient.pk)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', 'clinical:read')}")
    assert _bundle(api.get(_everything(patient.pk)))["total"] == 1 + len(vitals)


def test_head_answers_without_a_body_and_put_is_refused(clinician, patient):
    head = clinician.head(_everything(patient.pk))
    assert head.status_code == 200 and not head.content
    assert _outcome(clinician.put(_everything(patient.pk), {}), 405).issue[0].code == "not-supported"


def test_the_queries_do_not_grow_with_the_resources(clinician, charted, query_budget):
    clinician.get(f"/fhir/Patient/{charted.pk}")  # the card cached, rate-limit policies read (once per process)
    for page_size in (2, 1000):
        # A miss: the cache's database tier asked and filled (2), a count and the rows of each of three types (6),
        # the page's empty panels' members (1), the audit record (5 with its savepoint), and now and then the
        # token's client, the cache's scope generations or its policies, read again when their copy ends (3).
        with CaptureQueriesContext(connection) as queries, query_budget(17):
            body = _bundle(clinician.get(_everything(charted.pk), {"_count": page_size}))
        clinical = [q["sql"] for q in queries.captured_queries if "clinical_" in q["sql"] and "FROM" in q["sql"]]
        assert len(clinical) <= 8, [sql[:120] for sql in clinical]
    assert len(body["entry"]) > 50  # the whole chart in the one page
    with CaptureQueriesContext(connection) as queries:  # a hit reads no clinical row
        _bundle(clinician.get(_everything(charted.pk), {"_count": 1000}))
    assert not [q for q in queries.captured_queries if "clinical_observation" in q["sql"]]


def test_declared_in_the_capability_statement(api):
    statement = CapabilityStatement.model_validate(api.get("/fhir/metadata").json())
    [patient] = [resource for resource in statement.rest[0].resource if resource.type == "Patient"]
    assert [(op.name, op.definition) for op in patient.operation] == [
        ("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything")
    ]


def test_pretty_and_format_as_the_searches(clinician, patient):
    compact = clinician.get(_everything(patient.pk), {"_format": "json"})
    pretty = clinician.get(_everything(patient.pk), {"_pretty": "true"})
    assert pretty.json()["entry"] == compact.json()["entry"] and pretty.content != compact.content
    assert _outcome(clinician.get(_everything(patient.pk), {"_format": "xml"})).issue[0].expression == ["_format"]


def _pages(client, url: str) -> list[dict]:
    bodies = [_bundle(client.get(url))]
    while nexts := [link["url"] for link in bodies[-1]["link"] if link["relation"] == "next"]:
        bodies.append(_bundle(client.get(nexts[0])))
    return bodies


def _parameters(*parameters: tuple[str, str, object]) -> str:
    return json.dumps({"resourceType": "Parameters", "parameter": [{"name": n, k: v} for n, k, v in parameters]})


def test_a_parameters_body_answers_as_the_form(clinician, charted):
    """R4 operations take their POST body as a Parameters resource: it was a 415, only a form was read."""
    form = _bundle(clinician.post(_everything(charted.pk), "start=2000-01-01&end=2100&_type=Encounter,Observation"
                                  "&_count=4", content_type=FORM))  # fmt: skip
    body = _parameters(("start", "valueDate", "2000-01-01"), ("end", "valueString", "2100"),
                       ("_type", "valueCode", "Encounter"), ("_type", "valueCode", "Observation"),
                       ("_count", "valueInteger", 4))  # fmt: skip
    posted = _bundle(clinician.post(_everything(charted.pk), body, content_type="application/fhir+json"))
    assert _resources(posted) == _resources(form) and posted["total"] == form["total"]
    assert (
        posted["link"][0]
        == form["link"][0]
        == {"relation": "self", "url": f"http://testserver{_everything(charted.pk)}"}
    )
    found, bodies = _resources(posted), [posted]
    while nexts := [link["url"] for link in bodies[-1]["link"] if link["relation"] == "next"]:
        assert set(parse_qs(urlsplit(nexts[0]).query)) == {"_search", "_cursor"}  # its parameters out of the URL
        bodies.append(_bundle(clinician.get(nexts[0])))
        found += _resources(bodies[-1])
    whole = _resources(
        _bundle(clinician.get(_everything(charted.pk), {"_type": "Observation,Encounter", "_count": 1000}))
    )
    assert found == whole and len(bodies) > 1


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ("{", None),
        ("[]", "resourceType"),
        (json.dumps({"resourceType": "Bundle"}), "resourceType"),
        (json.dumps({"resourceType": "Parameters", "parameter": {"name": "_count"}}), "Parameters.parameter"),
        (json.dumps({"resourceType": "Parameters", "text": {}}), "Parameters.text"),
        (json.dumps({"resourceType": "Parameters", "parameter": ["_count"]}), "Parameters.parameter[0]"),
        (json.dumps({"resourceType": "Parameters", "parameter": [{"valueInteger": 2}]}), "Parameters.parameter[0]"),
        (_parameters(("_count", "valueInteger", "2")), "Parameters.parameter[0]"),
        (_parameters(("_count", "valueInteger", True)), "Parameters.parameter[0]"),
        (_parameters(("_count", "valueDecimal", 2.5)), "Parameters.parameter[0]"),
        (_parameters(("start", "valueInteger", 2024)), "Parameters.parameter[0]"),
        (_parameters(("_type", "valueCode", ["Observation"])), "Parameters.parameter[0]"),
        (json.dumps({"resourceType": "Parameters", "parameter": [{"name": "_count", "valueInteger": 2,
                                                                  "valueString": "2"}]}), "Parameters.parameter[0]"),
        (json.dumps({"resourceType": "Parameters", "parameter": [{"name": "_type", "part": []}]}),
         "Parameters.parameter[0]"),
        (_parameters(("_count", "valueString", "abc")), "_count"),
        (_parameters(("_count", "valueInteger", 0)), "_count"),
        (_parameters(("start", "valueDate", "2024-02-30")), "start"),
        (_parameters(("start", "valueDate", "2024"), ("start", "valueDate", "2025")), "start"),
        (_parameters(("_type", "valueCode", "Condition")), "_type"),
        (_parameters(("_since", "valueInstant", "2024-01-01")), "_since"),
        (_parameters(("_since", "valueDate", "2024-01-01")), "Parameters.parameter[0]"),
        (_parameters(("colour", "valueString", "blue")), "colour"),
        ('{"resourceType": "Parameters", "resourceType": "Parameters"}', "resourceType"),
    ],
)  # fmt: skip
def test_a_malformed_parameters_body_is_an_operation_outcome(clinician, patient, body, parameter):
    response = clinician.post(_everything(patient.pk), body, content_type="application/fhir+json")
    issue = _outcome(response).issue[0]
    if parameter is not None:
        assert issue.expression == [parameter] or parameter in issue.diagnostics, issue


def test_a_write_between_pages_is_in_no_page_and_no_total(clinician, patient, vitals, elsewhere):
    """The pages are a snapshot of the chart as of the first: a vital sign written meanwhile (newest first, so
    never served) was counted in the later pages' `total` (9 served, total 10)."""
    first = _bundle(clinician.get(f"http://testserver{_everything(patient.pk)}?_count=3"))
    written = []
    now = datetime.now(UTC)
    for at in (now, now - timedelta(hours=15), now - timedelta(days=3)):  # before, among and after what is left
        elsewhere(lambda at=at: written.append(observation_record(patient=patient, code="8867-4", value=88,
                                                                  effective_at=at)))  # fmt: skip
    bodies = [first]
    while nexts := [link["url"] for link in bodies[-1]["link"] if link["relation"] == "next"]:
        bodies.append(_bundle(clinician.get(nexts[0])))
    served = [r["id"] for body in bodies for r in _resources(body)]
    assert [body["total"] for body in bodies] == [1 + len(vitals)] * len(bodies) == [len(served)] * len(bodies)
    assert len(set(served)) == len(served) and not {str(row.pk) for row in written} & set(served)
    again = _resources(_bundle(clinician.get(_everything(patient.pk), {"_count": 1000})))  # a new snapshot
    assert {str(row.pk) for row in written} <= {r["id"] for r in again} and len(again) == len(served) + 3


def test_a_later_page_counts_nothing_and_its_cursor_is_sealed(clinician, charted):
    """The first page's counts and snapshot ride in the signed cursor: a later page reads rows only (it re-ran
    the three counts), and a cursor changed by hand (its total or snapshot) is refused."""
    first = _bundle(clinician.get(f"http://testserver{_everything(charted.pk)}?_count=3"))
    url = first["link"][1]["url"]
    with CaptureQueriesContext(connection) as queries:
        second = _bundle(clinician.get(url))
    assert second["total"] == first["total"]
    clinical = [q["sql"] for q in queries.captured_queries if "clinical_" in q["sql"]]
    assert clinical and not [sql for sql in clinical if "COUNT(" in sql.upper()], clinical
    cursor = parse_qs(urlsplit(url).query)["_cursor"][0]
    payload, mac = cursor.split(".")
    values = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for index in (3, 6):  # the snapshot's highest Observation id, the total
        forged = list(values)
        forged[index] += 1000
        raw = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
        query = {"_count": 3, "_cursor": f"{raw}.{mac}"}
        assert _outcome(clinician.get(_everything(charted.pk), query)).issue[0].expression == ["_cursor"]


def test_a_parameters_body_takes_as_many_parameters_as_a_form(clinician, patient, settings):
    """60,000 unknown parameters were read (seconds of a core) and each warned of under handling=lenient; a form is
    capped at DATA_UPLOAD_MAX_NUMBER_FIELDS. Lowered here so that the test posts a few, not a thousand."""
    lenient = {"HTTP_PREFER": "handling=lenient"}
    many = [(f"c{index}", "valueString", "x") for index in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)]
    refused = clinician.post(_everything(patient.pk), _parameters(*many), content_type=FHIR_JSON, **lenient)
    assert _outcome(refused).issue[0].expression == ["Parameters.parameter"]
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    names = [(f"c{index}", "valueString", "x") for index in range(6)]
    body = _bundle(clinician.post(_everything(patient.pk), _parameters(*names[:5]), content_type=FHIR_JSON, **lenient))
    assert len(body["entry"][-1]["resource"]["issue"]) == 5
    refused = clinician.post(_everything(patient.pk), _parameters(*names), content_type=FHIR_JSON, **lenient)
    assert _outcome(refused).issue[0].expression == ["Parameters.parameter"]
    form = clinician.post(_everything(patient.pk), "&".join(f"c{index}=x" for index in range(6)), content_type=FORM)
    assert _outcome(form)  # the form's own cap, as before


def test_an_unknown_name_is_echoed_up_to_64_characters(clinician, patient):
    """A 1 MB unknown name came back whole, in the refusal and in a lenient answer's warning."""
    name = "z" * 10_000
    lenient = {"HTTP_PREFER": "handling=lenient"}
    as_body = _parameters((name, "valueString", "x"))
    for data, content_type in ((as_body, FHIR_JSON), (f"{name}=x", FORM)):
        issue = _outcome(clinician.post(_everything(patient.pk), data, content_type=content_type)).issue[0]
        assert issue.expression == [name[:64]] and len(json.dumps(issue.model_dump())) < 1000
        body = _bundle(clinician.post(_everything(patient.pk), data, content_type=content_type, **lenient))
        assert body["entry"][-1]["resource"]["issue"][0]["expression"] == [name[:64]]


@pytest.mark.parametrize(
    "parameter",
    [{"valueBoolean": True}, {"valueDecimal": 2.5}, {"valueCodeableConcept": {"text": "x"}},
     {"part": [{"name": "a", "valueString": "b"}]}],
)  # fmt: skip
def test_lenient_handling_ignores_an_unknown_name_whatever_its_value(clinician, patient, parameter):
    """Only a known parameter's value[x] is read: an unknown one's non-string value was a 400 even when lenient."""
    data = json.dumps({"resourceType": "Parameters", "parameter": [{"name": "colour", **parameter}]})
    body = _bundle(
        clinician.post(_everything(patient.pk), data, content_type=FHIR_JSON, HTTP_PREFER="handling=lenient")
    )
    assert body["entry"][-1]["resource"]["issue"][0]["expression"] == ["colour"]
    assert _outcome(clinician.post(_everything(patient.pk), data, content_type=FHIR_JSON)).issue[0].expression == [
        "colour"
    ]


def test_a_key_given_twice_in_a_parameter_is_named_by_its_path(clinician, patient):
    """The diagnostics held Python reprs (`{'valueCode': [ErrorDetail(...)]}`) and no expression."""
    data = (
        '{"resourceType": "Parameters", "parameter": [{"name": "_count", "valueInteger": 2},'
        ' {"name": "_type", "valueCode": "Observation", "valueCode": "Encounter"}]}'
    )
    issue = _outcome(clinician.post(_everything(patient.pk), data, content_type=FHIR_JSON)).issue[0]
    assert issue.expression == ["Parameters.parameter[1].valueCode"]
    assert "Parameters.parameter[1].valueCode" in issue.diagnostics and "ErrorDetail" not in issue.diagnostics


def test_pretty_in_a_parameters_body_as_in_the_form(clinician, patient):
    """`_pretty` in the body was ignored (the form's was honoured)."""
    url = _everything(patient.pk)
    compact = clinician.post(url, _parameters(("_count", "valueInteger", 5)), content_type=FHIR_JSON)
    form = clinician.post(url, "_pretty=true", content_type=FORM)
    for kind, value in (("valueString", "true"), ("valueBoolean", True)):
        pretty = clinician.post(url, _parameters(("_pretty", kind, value)), content_type=FHIR_JSON)
        assert _resources(_bundle(pretty)) == _resources(_bundle(compact)) and b'\n  "' in pretty.content
        assert b'\n  "' in form.content and b"\n" not in compact.content
    off = clinician.post(url, _parameters(("_pretty", "valueBoolean", False)), content_type=FHIR_JSON)
    assert _bundle(off) and b"\n" not in off.content


def test_a_body_in_another_fhir_version_or_plain_json_is_a_415(clinician, patient):
    """`fhirVersion=3.0` on the body was read as R4 (200), though in Accept it is refused. Plain application/json
    is a 415, as on every FHIR search's `_search`."""
    data = _parameters(("_count", "valueInteger", 2))
    assert _bundle(clinician.post(_everything(patient.pk), data, content_type=f"{FHIR_JSON}; fhirVersion=4.0"))
    stu3 = clinician.post(_everything(patient.pk), data, content_type=f"{FHIR_JSON}; fhirVersion=3.0")
    assert "4.0" in _outcome(stu3, 415).issue[0].diagnostics
    assert _outcome(clinician.post(_everything(patient.pk), data, content_type="application/json"), 415)
    assert _outcome(clinician.post("/fhir/Observation/_search", "{}", content_type="application/json"), 415)
