"""`GET …/vitals/?latest=true&limit=1` answered the latest of every code (up to 13 rows) and dropped `limit` unseen:
a client asking for one row got thirteen. Every other parameter the API does not apply is refused, never ignored;
`limit` with `latest=true` is too, on the field."""

import pytest

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("latest", ["true", "1", "True"])
def test_a_limit_with_latest_is_a_field_level_400(clinician, patient, vitals, latest):
    before = AuditEvent.objects.count()
    response = clinician.get(f"/api/v1/patients/{patient.pk}/vitals/", {"latest": latest, "limit": "1"})
    assert response.status_code == 400, response.content[:300]
    assert "limit" in response.json()["errors"]
    # A refusal of a request naming its patient leaves one record (outcome error), like any bad input there.
    assert list(AuditEvent.objects.order_by("id")[before:].values_list("outcome", "patient_id")) == [
        (AuditEvent.Outcome.ERROR, patient.pk)
    ]


def test_latest_alone_and_limit_alone_still_answer(clinician, patient, vitals):
    url = f"/api/v1/patients/{patient.pk}/vitals/"
    latest = clinician.get(url, {"latest": "true"}).json()["results"]
    assert sorted(o["code"] for o in latest) == ["8310-5", "8867-4"]
    assert len(clinician.get(url, {"limit": "3"}).json()["results"]) == 3
    assert len(clinician.get(url, {"latest": "false", "limit": "3"}).json()["results"]) == 3
