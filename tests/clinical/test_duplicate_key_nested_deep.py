"""A name given twice in an object nested hundreds deep (a 3 KB body) is a 400, not a 500: the field error DRF
builds for it was walked past the recursion limit (RecursionError, a 2,800-line traceback per request)."""

from __future__ import annotations

import pytest

from apps.core.api.parsers import DUPLICATE_KEY, DUPLICATE_PLACED_DEPTH

pytestmark = pytest.mark.django_db


def _nested(depth: int, inner: str, opening: str = '{"a":', closing: str = "}") -> str:
    return '{"mrn":' + opening * depth + inner + closing * depth + "}"


@pytest.mark.parametrize(("opening", "closing"), [('{"a":', "}"), ("[", "]")])
def test_a_deep_duplicate_is_a_parse_error(clinician, opening, closing):
    body = _nested(600, '{"x":1,"x":2}', opening, closing)
    response = clinician.generic("POST", "/api/v1/patients/lookup/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "parse_error"
    assert "given twice" in response.json()["detail"]


def test_a_duplicate_within_the_placed_depth_keeps_its_field_error(clinician):
    body = _nested(DUPLICATE_PLACED_DEPTH - 2, '{"x":1,"x":2}')
    response = clinician.generic("POST", "/api/v1/patients/lookup/", body, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["errors"]["mrn"]
    for _ in range(DUPLICATE_PLACED_DEPTH - 2):
        error = error["a"]
    assert error == {"x": [DUPLICATE_KEY]}
