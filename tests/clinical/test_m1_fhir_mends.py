"""FHIR search mends after review: what a lenient search may leave out, which identifier systems a search
takes, and which cursors the server accepts."""

import base64
import json
from datetime import UTC, date, datetime
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.http import QueryDict
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.audit.models import AuditEvent
from apps.clinical.brief import PatientRecordOptimizer
from apps.clinical.fhir.params import MAX_ROW_ID, encode_cursor, search_binding
from apps.clinical.services import observation_record, patient_create

pytestmark = pytest.mark.django_db

LENIENT = {"HTTP_PREFER": "handling=lenient"}


@pytest.fixture
def heart_and_temp(patient):
    at = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    return [
        observation_record(patient=patient, code="8867-4", value=70, effective_at=at),
        observation_record(patient=patient, code="8310-5", value=36.6, unit="Cel", effective_at=at),
    ]


def _refused(response, parameter: str) -> OperationOutcome:
    assert response.status_code == 400, response.content[:300]
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].expression == [parameter]
    return outcome


def _match_ids(response) -> list[int]:
    assert response.status_code == 200, response.content[:300]
    entries = Bundle.model_validate(response.json()).entry or []
    return [int(entry.resource.id) for entry in entries if entry.search.mode == "match"]


# --- Prefer: handling=lenient leaves out unknown parameters only -----------------------------------------
@pytest.mark.parametrize("modified", ["code:not", "code:text", "code:above", "date:missing", "patient:Patient"])
def test_a_lenient_search_refuses_a_modifier_of_a_known_parameter(clinician, patient, heart_and_temp, modified):
    """`code:not=8867-4` asks for everything but heart rates: lenient handling dropped the modifier's parameter
    and answered the heart rate too, the opposite question (FHIR: servers SHALL reject unsupported modifiers)."""
    query = {"patient": patient.pk, modified: "8867-4"}
    outcome = _refused(clinician.get("/fhir/Observation", query, **LENIENT), modified)
    assert "modifier is not supported" in outcome.issue[0].diagnostics
    _refused(clinician.get("/fhir/Observation", query), modified)  # strict, as before


def test_a_lenient_patient_search_refuses_a_modified_id(clinician, patient):
    """`_id:not=<X>` answered X itself, every other patient with it."""
    other = patient_create(mrn="MRN-000999", family_name="Other", given_name="Bob", birth_date=date(1980, 1, 1),
                           sex="male")  # fmt: skip
    _refused(clinician.get("/fhir/Patient", {"_id:not": str(other.pk)}, **LENIENT), "_id:not")
    response = clinician.post("/fhir/Patient/_search", f"_id:not={other.pk}",
                              content_type="application/x-www-form-urlencoded", **LENIENT)  # fmt: skip
    _refused(response, "_id:not")


@pytest.mark.parametrize("control", ["_filter", "_has:Observation:patient:code", "_include", "_elements",
                                     "_revinclude", "_total", "_count:x", "_summary:text"])  # fmt: skip
def test_a_lenient_search_refuses_a_control_parameter_it_does_not_implement(clinician, patient, control):
    """Ignoring `_include` or `_elements` changes what the client gets back without saying so in the data."""
    _refused(clinician.get("/fhir/Observation", {"patient": patient.pk, control: "x"}, **LENIENT), control)


def test_a_lenient_search_still_ignores_an_unknown_parameter_with_a_modifier(clinician, patient, heart_and_temp):
    response = clinician.get("/fhir/Observation", {"patient": patient.pk, "foo:exact": "1"}, **LENIENT)
    assert sorted(_match_ids(response)) == sorted(row.pk for row in heart_and_temp)


def test_a_lenient_search_ignores_a_layout_parameter(clinician, patient, heart_and_temp):
    """`_pretty` lays the answer out and changes nothing found or returned: a lenient search ignored it before
    87c8bf6 and refused it after (R4's review); strict takes it too now (test_b4_pretty)."""
    response = clinician.get("/fhir/Observation", {"patient": patient.pk, "_pretty": "true"}, **LENIENT)
    assert sorted(_match_ids(response)) == sorted(row.pk for row in heart_and_temp)


@pytest.mark.parametrize("prefer", ['handling="lenient"', 'handling = "Lenient"', 'return=minimal; handling="lenient"'])
def test_a_quoted_lenient_is_lenient(clinician, patient, heart_and_temp, prefer):
    response = clinician.get("/fhir/Observation", {"patient": patient.pk, "foo": "1"}, HTTP_PREFER=prefer)
    assert sorted(_match_ids(response)) == sorted(row.pk for row in heart_and_temp)


@pytest.mark.parametrize(
    "prefer",
    ["handling=lenient, handling=strict", "handling=strict, handling=lenient", 'handling="strict";handling=lenient'],
)
def test_strict_wins_when_both_are_asked(clinician, patient, prefer):
    _refused(clinician.get("/fhir/Observation", {"patient": patient.pk, "foo": "1"}, HTTP_PREFER=prefer), "foo")


# --- identifier systems: a system that is no URI is a slip, not a system no patient is in ---------------
@pytest.mark.parametrize("system", ["MRN", "hospital mrn", "://x", "mrn-system"])
def test_a_fhir_identifier_search_refuses_a_system_that_is_not_a_uri(clinician, patient, system):
    """`identifier=MRN|MRN-000123` answered an empty Bundle ("no such patient"); POST /api/v1/patients/lookup/
    with the same system is a 400 since bf5783f, and so is the FHIR search, GET and posted."""
    before = AuditEvent.objects.filter(action="search", outcome="success").count()
    outcome = _refused(clinician.get("/fhir/Patient", {"identifier": f"{system}|{patient.mrn}"}), "identifier")
    assert "absolute URI" in outcome.issue[0].diagnostics
    body = urlencode({"identifier": f"{system}|{patient.mrn}", "_summary": "count"})
    response = clinician.post("/fhir/Patient/_search", body, content_type="application/x-www-form-urlencoded")
    _refused(response, "identifier")
    assert AuditEvent.objects.filter(action="search", outcome="success").count() == before  # nothing was searched


def test_a_fhir_identifier_search_still_finds_by_a_uri_system_or_none(clinician, patient):
    for identifier in (patient.mrn, f"|{patient.mrn}", f"{patient.identifier_system}|{patient.mrn}"):
        assert _match_ids(clinician.get("/fhir/Patient", {"identifier": identifier})) == [patient.pk]
    assert _match_ids(clinician.get("/fhir/Patient", {"identifier": f"urn:oid:1.2.3.4|{patient.mrn}"})) == []


def test_the_brief_s_lookup_refuses_a_system_that_is_not_a_uri(patient):
    """optimize_patient_lookup(mrn, system="MRN") returned None and audited a not-found search."""
    optimizer = PatientRecordOptimizer()
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        async_to_sync(optimizer.optimize_patient_lookup)(patient.mrn, None, system="MRN")
    assert "system" in refused.value.message_dict
    assert AuditEvent.objects.count() == before
    card = async_to_sync(optimizer.optimize_patient_lookup)(patient.mrn, None, system=patient.identifier_system)
    assert card["id"] == patient.pk
    assert async_to_sync(optimizer.optimize_patient_lookup)(patient.mrn, None, system="urn:oid:1.2.3.4") is None


# --- cursors: only the server's, and only ids a bigint holds ------------------------------------------------
def _unsigned(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize("values", [[1], [10**20], [-(10**20)], [0]])
def test_a_hand_made_patient_cursor_is_a_400(clinician, patient, values):
    """`_cursor=[1]` (or any id) paged from wherever the client chose, and `[10**20]` went to the database."""
    _refused(clinician.get("/fhir/Patient", {"_cursor": _unsigned(values)}), "_cursor")
    signature = encode_cursor([patient.pk]).partition(".")[2]  # a real cursor's signature on other values
    _refused(clinician.get("/fhir/Patient", {"_cursor": f"{_unsigned(values)}.{signature}"}), "_cursor")


@pytest.mark.parametrize("value", [10**20, 2**63, -(10**20), 0, -1])
def test_an_id_past_a_bigint_is_a_400_even_in_a_signed_cursor(clinician, patient, heart_and_temp, value):
    """The compiled Observation search took `["...", 2**63]` to PostgreSQL; ids are checked past the signature
    too (a cursor signed before the range existed, or a key that leaked)."""
    instant, query = "2024-03-05T10:00:00+00:00", {"patient": str(patient.pk)}
    _refused(clinician.get("/fhir/Observation", {**query, "_cursor": _unsigned([instant, value])}), "_cursor")
    # Signed for this very search, as the server signs its own: only the range check refuses them (a signature
    # refusal says "... for this search: ..." instead). A Patient search without parameters signs values alone.
    signed = encode_cursor([instant, value], search_binding("Observation", QueryDict(urlencode(query))))
    for path, params in (
        ("/fhir/Observation", {**query, "_cursor": signed}),
        ("/fhir/Patient", {"_cursor": encode_cursor([value])}),
    ):
        outcome = _refused(clinician.get(path, params), "_cursor")
        assert outcome.issue[0].diagnostics == "not a cursor this server issued"


def test_the_server_s_own_cursors_still_page(clinician, patient, heart_and_temp):
    first = clinician.get("/fhir/Observation", {"patient": patient.pk, "_count": 1}).json()
    (next_url,) = [link["url"] for link in first["link"] if link["relation"] == "next"]
    second = clinician.get(next_url.removeprefix("http://testserver"))
    assert len(_match_ids(second)) == 1
    assert {first["entry"][0]["resource"]["id"], str(_match_ids(second)[0])} == {str(r.pk) for r in heart_and_temp}
    biggest = encode_cursor([MAX_ROW_ID])  # the last id a bigint holds: a cursor past every patient, an empty page
    assert _match_ids(clinician.get("/fhir/Patient", {"_cursor": biggest})) == []


def test_a_cursor_signed_under_another_key_is_a_400(clinician, patient, heart_and_temp, settings):
    cursor = encode_cursor([patient.pk])
    settings.CACHE_KEY_SECRET = "another server's"
    _refused(clinician.get("/fhir/Patient", {"_cursor": cursor}), "_cursor")
