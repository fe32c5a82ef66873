"""`/api/v1/audit/?patient_id=` an Arabic-Indic one filtered on patient 1: Python's int() reads any script's
digits. Filters take ASCII digits; any other is a 400 naming the field."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query",
    [
        {"patient_id": "\u0661"},
        {"actor_id": "\U0001d7d9"},
        {"page_size": "\u0661\u0660"},
        {"since": "\u0662\u0660\u0662\u0664-01-01"},
        {"until": "2024-01-01T00:00:0\u0660Z"},
    ],
)
def test_audit_filters_take_only_ascii_digits(api, issue_token, query):
    token = issue_token("audit:read")
    response = api.get("/api/v1/audit/", query, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400, response.content[:300]
    assert set(query) <= set(response.json()["errors"])
    assert api.get("/api/v1/audit/", {"patient_id": "1"}, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
