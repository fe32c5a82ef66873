"""A name with a line break or another control character (a tab, BEL, DEL, U+2028) is refused on the field: it was
stored as given, and broke every line-based consumer of the record (HL7 v2 feeds end a segment at CR, CSV
exports and wristband printers at LF)."""

from datetime import date

import pytest

from apps.audit.models import AuditEvent
from apps.clinical.models import Patient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("field", ["family_name", "given_name"])
@pytest.mark.parametrize("name", ["Anna\nSmith", "Anna\rSmith", "An\tna", "Anna\u0007", "An\x7fna", "Anna\u2028Smith"])
def test_a_name_with_a_control_character_is_a_field_level_400(clinician, field, name):
    body = {"mrn": "MRN-CTRL-1", "family_name": "Doe", "given_name": "Jane", "birth_date": "1980-02-03", field: name}
    before = AuditEvent.objects.count()
    response = clinician.post("/api/v1/patients/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert field in response.json()["errors"]
    assert not Patient.objects.filter(mrn="MRN-CTRL-1").exists()
    assert AuditEvent.objects.count() == before  # no patient was found or written


def test_names_of_every_script_are_still_registered(clinician):
    names = {"family_name": "Nguyễn-O'Brien van der Berg", "given_name": "Zoë Łucja (محمد\u200cرضا) 山田"}  # noqa: RUF001 - Persian
    body = {"mrn": "MRN-CTRL-2", "birth_date": date(1980, 2, 3).isoformat(), **names}
    response = clinician.post("/api/v1/patients/", body, format="json")
    assert response.status_code == 201, response.content[:300]
    assert {k: response.json()[k] for k in names} == names
