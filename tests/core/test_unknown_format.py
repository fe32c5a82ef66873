"""DRF's `?format=` naming a renderer the view has not (`xml`) is a 400 naming `format` on every API view, not
DRF's 404 "Not found." that read as "no such resource" for one that exists (the patient-data views refuse it
after authentication, with an audit record: tests/clinical/test_b_unknown_format.py)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/services/", "/api/v1/metrics/slo/", "/api/v1/whoami/"])
def test_an_unknown_format_is_a_400_naming_format(staff_api, path):
    response = staff_api.get(path, {"format": "xml"})
    assert response.status_code == 400, response.content[:300]
    assert set(response.json()["errors"]) == {"format"}
