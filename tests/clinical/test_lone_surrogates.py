"""A JSON body may spell a lone surrogate (`"\\ud800"`): valid JSON, but no Unicode character. Where a 400
echoed it (a choice that is not one, an unknown field's name), the answer could not be encoded as UTF-8 and the
client got a 500; it is a 400 parse error on every JSON endpoint of the clinical API, before any lookup."""

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

LONE = '"a\\ud800b"'  # JSON text: the escape, not the character
PATIENT = '"mrn": "NEW-1", "family_name": "A", "given_name": "B", "birth_date": "1970-01-01"'
VITAL = '"code": "8867-4", "value": 70, "effective_at": "2024-01-01T00:00:00Z"'


def _object(*members: str) -> str:
    return "{" + ", ".join(members) + "}"


def _bodies(patient_id: int) -> list[tuple[str, str]]:
    vitals = f"/api/v1/patients/{patient_id}/vitals/"
    return [
        ("/api/v1/patients/", _object(PATIENT, f'"sex": {LONE}')),  # a choice: echoed in its error
        ("/api/v1/patients/", _object(PATIENT, f"{LONE}: 1")),  # an unknown field: named in its error
        ("/api/v1/patients/lookup/", _object('"mrn": "X"', f"{LONE}: 1")),
        ("/api/v1/patients/window/", _object('"name": "a"', f"{LONE}: 1")),
        (vitals, _object(VITAL, f'"status": {LONE}')),
        (vitals, _object(VITAL, f"{LONE}: 1")),
        (vitals, _object(VITAL, '"unit": ["x", ' + _object(f'"y": {LONE}') + "]")),  # nested: refused alike
    ]


@pytest.mark.parametrize("case", range(7))
def test_a_lone_surrogate_in_a_json_body_is_a_400_parse_error(clinician, patient, case):
    url, body = _bodies(patient.pk)[case]
    before = AuditEvent.objects.count()
    response = clinician.generic("POST", url, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "parse_error"
    assert AuditEvent.objects.count() == before  # refused before any patient was looked up
    assert not patient.observations.exists()


def test_a_surrogate_pair_is_one_character_and_accepted(clinician, patient):
    body = '{"mrn": "NEW-2", "family_name": "A\\ud83d\\ude00", "given_name": "B", "birth_date": "1970-01-01"}'
    response = clinician.generic("POST", "/api/v1/patients/", body, content_type="application/json")
    assert response.status_code in (201, 400), response.content[:300]
    assert response.json().get("code") != "parse_error"
