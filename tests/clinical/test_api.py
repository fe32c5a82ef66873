"""The clinical REST API: every endpoint, its scope, bad input, and an audit record on every path."""

from datetime import UTC, date, datetime, timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.models import Encounter, Observation, Patient
from apps.clinical.services import patient_create, patient_soft_delete

pytestmark = pytest.mark.django_db


def _last_audit() -> AuditEvent:
    return AuditEvent.objects.order_by("-seq").first()


def _assert_no_identifiers(event: AuditEvent, patient: Patient) -> None:
    values = [str(getattr(event, f.name)) for f in AuditEvent._meta.fields]
    for secret in (patient.mrn, patient.family_name, patient.birth_date.isoformat()):
        assert all(secret not in value for value in values)


def test_lookup_by_mrn_in_the_body_and_audited(clinician, patient):
    response = clinician.post("/api/v1/patients/lookup/", {"mrn": "MRN-000123"}, format="json")
    assert response.status_code == 200
    assert response.json()["id"] == patient.pk
    event = _last_audit()
    assert (event.action, event.resource_type, event.patient_id, event.actor_name) == (
        "read", "Patient", patient.pk, "ward-app"
    )  # fmt: skip
    assert event.query_digest and event.request_id
    _assert_no_identifiers(event, patient)


def test_lookup_of_an_unknown_mrn_is_404_and_audited(clinician, patient):
    before = AuditEvent.objects.count()
    response = clinician.post("/api/v1/patients/lookup/", {"mrn": "NOPE-1"}, format="json")
    assert response.status_code == 404
    assert AuditEvent.objects.count() == before + 1
    assert _last_audit().outcome == "not_found"


@pytest.mark.parametrize("mrn", ["", "has space", "x" * 65, "-leading", "semi;colon"])
def test_malformed_mrn_is_a_field_level_400(clinician, patient, mrn):
    response = clinician.post("/api/v1/patients/lookup/", {"mrn": mrn}, format="json")
    assert response.status_code == 400
    assert "mrn" in response.json()["errors"]


def test_detail_requires_patient_read(api, issue_token, patient):
    token = issue_token("clinical:read")
    response = api.get(f"/api/v1/patients/{patient.pk}/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403
    assert _last_audit().outcome == "denied"


def test_detail_and_soft_deleted_patients(clinician, patient, django_capture_on_commit_callbacks):
    assert clinician.get(f"/api/v1/patients/{patient.pk}/").json()["mrn"] == "MRN-000123"
    with django_capture_on_commit_callbacks(execute=True):  # the delete commits: the cache hears of it
        patient_soft_delete(patient=patient)
    assert clinician.get(f"/api/v1/patients/{patient.pk}/").status_code == 404
    assert clinician.get("/api/v1/patients/999999999/").status_code == 404


def test_search_by_name_prefix_accents_and_birth_date(clinician, patient):
    for query in ("family=mull", "family=MÜL", "name=ann", "given=Anna&birth_date=1970-05-04"):
        body = clinician.get(f"/api/v1/patients/?{query}").json()
        assert [p["id"] for p in body["results"]] == [patient.pk], query
    assert clinician.get("/api/v1/patients/?birth_date=1970-05-05").json()["results"] == []
    assert _last_audit().action == "search"


def test_search_pages_with_a_cursor_within_a_query_budget(clinician, loaded, query_budget):
    seen = []
    url = "/api/v1/patients/?page_size=7"
    while url:
        # token lookup, audit (head lock, insert, head update) and the page itself
        with query_budget(8):
            body = clinician.get(url).json()
        seen += [p["id"] for p in body["results"]]
        url = body["next"]
    assert len(seen) == len(set(seen)) == 30


@pytest.mark.parametrize(
    "query",
    ["birth_date=1970-02-30", "page_size=0", "page_size=5000", "unknown=1", "name=" + "x" * 101],
)
def test_bad_search_input_is_400(clinician, patient, query):
    response = clinician.get(f"/api/v1/patients/?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_create_patient_needs_patient_write_and_is_audited(api, issue_token):
    payload = {"mrn": "NEW-1", "family_name": "Nguyen", "given_name": "Minh", "birth_date": "1988-01-02", "sex": "male"}
    reader = issue_token("patient:read")
    response = api.post("/api/v1/patients/", payload, format="json", HTTP_AUTHORIZATION=f"Bearer {reader}")
    assert response.status_code == 403
    writer = issue_token("patient:write")
    response = api.post("/api/v1/patients/", payload, format="json", HTTP_AUTHORIZATION=f"Bearer {writer}")
    assert response.status_code == 201
    assert _last_audit().action == "create"
    duplicate = api.post("/api/v1/patients/", payload, format="json", HTTP_AUTHORIZATION=f"Bearer {writer}")
    assert duplicate.status_code == 400 and "mrn" in duplicate.json()["errors"]  # the field to fix
    for bad, field in (({"given_name": "\u200b\u200b"}, "given_name"), ({"family_name": " 42 "}, "family_name"),
                       ({"sexx": "female"}, "sexx"), ({"id": 5}, "id")):  # fmt: skip
        response = api.post("/api/v1/patients/", {**payload, "mrn": "NEW-4", **bad}, format="json",
                            HTTP_AUTHORIZATION=f"Bearer {writer}")  # fmt: skip
        assert response.status_code == 400 and field in response.json()["errors"], bad
    for system in ("not a url", "hospital.example.org/mrn", ""):
        response = api.post("/api/v1/patients/", {**payload, "mrn": "NEW-3", "system": system}, format="json",
                            HTTP_AUTHORIZATION=f"Bearer {writer}")  # fmt: skip
        assert response.status_code == 400 and "system" in response.json()["errors"], system
    future = {**payload, "mrn": "NEW-2", "birth_date": date.today().replace(year=date.today().year + 1).isoformat()}
    response = api.post("/api/v1/patients/", future, format="json", HTTP_AUTHORIZATION=f"Bearer {writer}")
    assert response.status_code == 400 and "birth_date" in response.json()["errors"]
    assert Patient.objects.count() == 1


def test_a_name_that_decomposes_longer_is_stored_and_found(clinician):
    """'ﬃ' decomposes to 'ffi': a 40-character family name has a 120-character search form, cut to fit."""
    payload = {"mrn": "LIG-1", "family_name": "ﬃ" * 40, "given_name": "Ǆ" * 60, "birth_date": "1988-01-02"}
    created = clinician.post("/api/v1/patients/", payload, format="json")
    assert created.status_code == 201, created.json()
    found = clinician.get("/api/v1/patients/", {"family": "ﬃ" * 40}).json()["results"]
    assert [patient["id"] for patient in found] == [created.json()["id"]]


def test_vitals_by_code_window_and_latest(clinician, patient, vitals):
    url = f"/api/v1/patients/{patient.pk}/vitals/"
    assert len(clinician.get(url).json()["results"]) == 8
    heart = clinician.get(url, {"code": "8867-4"}).json()["results"]
    assert [o["value"] for o in heart] == [72.0, 80.0, 90.0, 100.0]
    assert heart[0]["display"] == "Heart rate" and heart[0]["unit"] == "/min"
    latest = clinician.get(url, {"latest": "true"}).json()["results"]
    assert sorted((o["code"], o["value"]) for o in latest) == [("8310-5", 36.5), ("8867-4", 72.0)]
    since = vitals[2].effective_at.isoformat()
    assert len(clinician.get(url, {"since": since, "code": "8310-5"}).json()["results"]) == 3
    assert len(clinician.get(url, {"limit": 3}).json()["results"]) == 3
    event = _last_audit()
    assert (event.action, event.resource_type, event.patient_id, event.result_count) == (
        "search", "Observation", patient.pk, 3
    )  # fmt: skip


def test_a_cursor_is_refused_where_nothing_pages_by_cursor(clinician, patient):
    response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/", {"cursor": "cD0x"})
    assert response.status_code == 400 and set(response.json()["errors"]) == {"cursor"}
    # (A list that pages reads it: see test_huge_ids_are_404_and_tampered_cursors_400_never_500.)


def test_a_cursor_that_is_not_base64_or_empty_is_400_not_page_one(clinician, patient):
    for cursor in ("%%%", "", "!!!!", "é"):
        response = clinician.get("/api/v1/patients/", {"name": patient.family_name, "cursor": cursor})
        assert response.status_code == 400, cursor
        assert set(response.json()["errors"]) == {"cursor"}


def test_a_single_valued_parameter_given_twice_is_400(clinician, patient):
    url = f"/api/v1/patients/{patient.pk}/vitals/?since=2026-01-01T00:00:00Z&since=2026-02-01T00:00:00Z"
    response = clinician.get(url)
    assert response.status_code == 400 and set(response.json()["errors"]) == {"since"}


def test_an_empty_parameter_is_400_not_a_search_for_everything(clinician, patient):
    """DRF's form rule would read `name=` as absent: the search for nothing answered with every patient."""
    for url, name in (("/api/v1/patients/?name=", "name"), (f"/api/v1/patients/{patient.pk}/vitals/?code=%20", "code"),
                      (f"/api/v1/patients/{patient.pk}/encounters/?status=", "status")):  # fmt: skip
        response = clinician.get(url)
        assert response.status_code == 400, url
        assert response.json()["errors"] == {name: "Empty; give a value or leave the parameter out."}


@pytest.mark.parametrize(
    "query",
    [
        {"code": "1234-5"},
        {"since": "2024-13-01"},
        {"since": "2024-02-01T00:00:00Z", "until": "2024-01-01T00:00:00Z"},
        {"limit": "1000000"},
        {"latest": "perhaps"},
        {"colour": "blue"},
    ],
)
def test_bad_vitals_input_is_400(clinician, patient, query):
    response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/", query)
    assert response.status_code == 400
    assert response.json()["errors"]


def test_recording_an_observation_validates_code_unit_and_value(clinician, patient):
    url = f"/api/v1/patients/{patient.pk}/vitals/"
    other = patient_create(mrn="MRN-000999", family_name="Okafor", given_name="Ada", birth_date=date(1981, 2, 3))
    other_patients_encounter = Encounter.objects.create(
        patient=other, encounter_class="AMB", status="finished", period_start=datetime(2026, 1, 1, tzinfo=UTC)
    )
    ok = {"code": "8867-4", "value": 64, "unit": "/min", "effective_at": "2026-01-01T08:00:00Z"}
    assert clinician.post(url, ok, format="json").status_code == 201
    assert _last_audit().action == "create"
    for bad, field in (
        ({**ok, "code": "0000-0"}, "code"),
        ({**ok, "unit": "bpm"}, "unit"),
        ({**ok, "value": 900}, "value"),
        ({**ok, "value": "fast"}, "value"),
        ({**ok, "value": True}, "value"),  # not 1.0
        ({**ok, "note": "typo'd field"}, "note"),
        ({**ok, "effective_at": "2999-01-01T00:00:00Z"}, "effective_at"),
        ({**ok, "effective_at": "1969-01-01T00:00:00Z"}, "effective_at"),  # before the patient was born
        ({**ok, "encounter_id": 99999999999999999999}, "encounter_id"),  # beyond bigint
        ({**ok, "encounter_id": 987654}, "encounter_id"),  # no such encounter
        ({**ok, "encounter_id": other_patients_encounter.pk}, "encounter_id"),
    ):
        response = clinician.post(url, bad, format="json")
        assert response.status_code == 400, bad
        assert field in response.json()["errors"]
    assert Observation.objects.filter(patient=patient).count() == 1


def test_encounters_and_medications_with_filters(clinician, loaded):
    patient = Patient.objects.order_by("pk").first()
    encounters = clinician.get(f"/api/v1/patients/{patient.pk}/encounters/").json()["results"]
    assert len(encounters) == 1
    status = encounters[0]["status"]
    assert clinician.get(f"/api/v1/patients/{patient.pk}/encounters/", {"status": status}).json()["results"]
    assert clinician.get(f"/api/v1/patients/{patient.pk}/encounters/", {"status": "bogus"}).status_code == 400
    medications = clinician.get(f"/api/v1/patients/{patient.pk}/medications/", {"status": "active"})
    assert medications.status_code == 200
    assert all(m["status"] == "active" for m in medications.json()["results"])
    assert clinician.get(f"/api/v1/patients/{patient.pk}/medications/", {"intent": "wish"}).status_code == 400
    assert AuditEvent.objects.filter(patient_id=patient.pk, action="search").count() >= 3


def test_clinical_lists_need_clinical_read(api, issue_token, patient):
    token = issue_token("patient:read")
    for path in ("vitals", "encounters", "medications"):
        response = api.get(f"/api/v1/patients/{patient.pk}/{path}/", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 403


def test_bad_purpose_of_use_is_400_before_any_read(clinician, patient):
    before = AuditEvent.objects.count()
    response = clinician.get(f"/api/v1/patients/{patient.pk}/", HTTP_X_PURPOSE_OF_USE="CURIOSITY")
    assert response.status_code == 400
    assert "X-Purpose-Of-Use" in response.json()["errors"]
    [refused] = AuditEvent.objects.order_by("seq")[before:]  # the attempt is kept, no data was read
    assert (refused.outcome, refused.purpose_of_use, refused.result_count) == ("error", "INVALID", None)
    clinician.get(f"/api/v1/patients/{patient.pk}/", HTTP_X_PURPOSE_OF_USE="ETREAT")
    assert _last_audit().purpose_of_use == "ETREAT"


def test_request_id_is_echoed_and_audited(clinician, patient):
    offered = "0f8b5a3e-2c1d-4e7a-9b6c-5d4e3f2a1b0c"  # a UUID: a shape no token or MRN has
    response = clinician.get(f"/api/v1/patients/{patient.pk}/", HTTP_X_REQUEST_ID=offered)
    assert response["X-Request-ID"] == offered
    assert _last_audit().request_id == offered
    response = clinician.get(f"/api/v1/patients/{patient.pk}/", HTTP_X_REQUEST_ID="bad id with spaces")
    assert response["X-Request-ID"] != "bad id with spaces"


def test_lean_representations_match_the_documented_serializers(patient, vitals):
    from apps.clinical.api import serializers as s
    from apps.clinical.api.representations import (
        encounter_json,
        medication_request_json,
        observation_json,
        patient_json,
    )
    from apps.clinical.models import Encounter, MedicationRequest

    assert patient_json(patient) == dict(s.PatientOutputSerializer(patient).data)
    assert observation_json(vitals[0]) == dict(s.ObservationOutputSerializer(vitals[0]).data)
    started = vitals[0].effective_at
    open_encounter = Encounter.objects.create(
        patient=patient, encounter_class="EMER", status="in-progress", period_start=started
    )
    closed = Encounter.objects.create(
        patient=patient, encounter_class="AMB", status="finished", period_start=started,
        period_end=started + timedelta(minutes=42, microseconds=5),
    )  # fmt: skip
    for encounter in (open_encounter, closed):
        assert encounter_json(encounter) == dict(s.EncounterOutputSerializer(encounter).data)
    prescription = MedicationRequest.objects.create(
        patient=patient, encounter=closed, rxnorm_code="197361", display="amlodipine 5 MG Oral Tablet",
        authored_at=started, dosage_text="1 tablet daily",
    )  # fmt: skip
    assert medication_request_json(prescription) == dict(s.MedicationOutputSerializer(prescription).data)


def test_huge_ids_are_404_and_tampered_cursors_400_never_500(clinician, api, issue_token, loaded):
    assert clinician.get("/api/v1/patients/" + "9" * 65 + "/").status_code == 404
    token = issue_token("clinical:read")
    response = api.get("/api/v1/patients/" + "9" * 20 + "/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code in (403, 404)
    patient = Patient.objects.order_by("pk").first().pk
    for path, cursor in (
        ("/api/v1/patients/", "cD1hYmM="),  # p=abc: decodes, but no id
        (f"/api/v1/patients/{patient}/encounters/", "cD0yMDI2LTEzLTQ1"),  # p=2026-13-45
    ):
        response = clinician.get(path, {"cursor": cursor})
        assert response.status_code == 400, (path, cursor)
        assert response.json()["errors"]["cursor"] == ["Invalid cursor"]


def test_a_refused_caller_with_a_bad_purpose_is_still_audited(api, issue_token, patient):
    token = issue_token("clinical:read")
    response = api.get(
        f"/api/v1/patients/{patient.pk}/", HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_PURPOSE_OF_USE="NOSY"
    )
    assert response.status_code in (400, 403)
    event = _last_audit()
    assert (event.outcome, event.purpose_of_use, event.patient_id) == ("denied", "INVALID", patient.pk)


def test_an_mrn_or_a_reference_ending_in_a_newline_is_refused():
    """`^...$` with match() passes a final newline: "MRN-000123\n" was a valid MRN to store (the API's fields
    trim it; a command or a service call did not) and "Patient/12\n" a valid FHIR reference."""
    from django.core.exceptions import ValidationError

    from apps.clinical.fhir.params import FhirParamError, parse_reference
    from apps.clinical.services import validate_mrn

    with pytest.raises(ValidationError):
        validate_mrn("MRN-000123\n")
    with pytest.raises(FhirParamError):
        parse_reference("patient", "Patient/12\n", "Patient")
    assert validate_mrn("MRN-000123") == "MRN-000123" and parse_reference("patient", "Patient/12", "Patient") == 12
