"""A clinical JSON body that is not an object is a 400 on `body` (validated_body), not DRF's non-field error
("Expected a dictionary", "No data provided")."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("body", ["[1, 2]", "null"])
def test_a_clinical_body_that_is_not_an_object_is_refused_on_body(api, issue_token, body):
    token = issue_token("patient:read", "patient:write")
    response = api.generic("POST", "/api/v1/patients/", body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")  # fmt: skip
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {"body": ["A JSON object."]}
