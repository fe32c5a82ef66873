"""The audit listing's filters: bad input of any kind is a 400 naming the field, never a 500."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "query",
    [
        {"since": "yesterday"},
        {"since": "0001-01-01T00:00:00+14:00"},
        {"until": "9999-12-31T23:59:59-14:00"},
        {"until": "2024-02-30T00:00:00Z"},
        # Read on the server's clock: in the hour the clocks go back, one of two instants picked silently.
        {"since": "2024-11-03T01:30:00"},
        {"until": "2024-11-03T01:30"},
        {"patient_id": "1.5"},
        {"patient_id": "-1"},
        {"actor_id": "0x10"},
        {"actor_type": "robot"},
        {"resource_type": "x" * 41},
        {"resource_type": "Pat\x00ient"},
        {"page_size": "0"},
        {"page_size": "1e3"},
        {"cursor": "not-a-cursor"},
    ],
)
def test_bad_filters_are_400_with_the_field(api, issue_token, query):
    token = issue_token("audit:read")
    response = api.get("/api/v1/audit/", query, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400, response.content


def test_a_bare_date_is_the_start_of_that_day(api, issue_token):
    token = issue_token("audit:read")
    response = api.get("/api/v1/audit/", {"since": "2024-11-03"}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
