"""FHIR search mends after review: what a lenient search may leave out, which identifier systems a search
takes, and which cursors the server accepts."""

from datetime import UTC, date, datetime
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from apps.audit.models import AuditEvent
from apps.clinical.brief import PatientRecordOptimizer
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
