"""Every list endpoint of the clinical data plane answers in a fixed number of queries, whatever the page
size: the token, the audit record and the rows, never one query per row (N+1)."""

import pytest

from apps.clinical.models import Patient

pytestmark = pytest.mark.django_db

# Measured, per request: token lookup, the rows (and the patient's card, or a window's count), the audit record
# (head lock, insert, head update); one more for a per-process refresh (policies, metrics) that may fall in it.
LIST_ENDPOINTS = [
    ("/api/v1/patients/?page_size={n}", 7),
    ("/api/v1/patients/?name=a&page_size={n}", 7),
    ("/api/v1/patients/window/?name=a&limit={n}", 8),
    ("/api/v1/patients/{pid}/vitals/?limit={n}", 9),
    ("/api/v1/patients/{pid}/vitals/?latest=true&code=8867-4,8310-5", 7),
    ("/api/v1/patients/{pid}/encounters/?page_size={n}", 9),
    ("/api/v1/patients/{pid}/medications/?page_size={n}", 9),
    ("/fhir/Patient?_count={n}", 7),
    ("/fhir/Patient?family=a&_count={n}", 7),
    ("/fhir/Observation?patient={pid}&category=vital-signs&_count={n}", 8),
    ("/fhir/Encounter?patient={pid}&_count={n}", 8),
    ("/fhir/MedicationRequest?patient={pid}&_count={n}", 7),
]


@pytest.mark.parametrize(("path", "budget"), LIST_ENDPOINTS)
def test_list_endpoints_keep_their_query_budget_at_any_page_size(clinician, loaded, query_budget, path, budget):
    pid = Patient.objects.filter(medication_requests__isnull=False).order_by("pk").first().pk
    assert clinician.get(path.format(pid=pid, n=1)).status_code == 200  # per-process policies read once
    for n in (2, 30):  # a page of thirty within the budget of a page of two
        with query_budget(budget):
            response = clinician.get(path.format(pid=pid, n=n))
        assert response.status_code == 200, response.content[:300]
