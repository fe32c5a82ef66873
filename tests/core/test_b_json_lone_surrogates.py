"""A JSON body may spell a lone surrogate (`"\\ud800"`): valid JSON, but no Unicode character. Outside the clinical
API (which refused it on its own) a 400 that echoed one (an unknown field's name, a choice that is none) could not
be encoded as UTF-8 and the client got a 500. The default JSON parser refuses it: a 400 parse error everywhere."""

import pytest

from apps.services.services import service_create

pytestmark = pytest.mark.django_db

LONE = '"a\\ud800b"'  # JSON text: the escape, not the character


@pytest.mark.parametrize("path", ["/api/v1/inference/anything/embed", "/api/v1/inference/anything/generate"])
@pytest.mark.parametrize("body", [f"{{{LONE}: 1}}", f'{{"inputs": ["x"], {LONE}: 1}}', f'{{"prompt": {LONE}}}'])
def test_a_lone_surrogate_posted_to_inference_is_a_400_parse_error(api, issue_token, path, body):
    token = issue_token("inference")
    response = api.generic("POST", path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize("body", [f'{{"kind": {LONE}}}', f"{{{LONE}: 1}}"])
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_lone_surrogate_in_a_service_is_a_400_parse_error(staff_api, method, body):
    service_create(name="Embeddings", slug="embeddings", kind="inference")
    url = "/api/v1/services/" if method == "POST" else "/api/v1/services/embeddings/"
    if method == "POST":
        body = body.replace("{", '{"name": "Triage", "slug": "triage", ', 1)
    response = staff_api.generic(method, url, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "parse_error"


def test_a_surrogate_pair_is_one_character_and_not_a_parse_error(staff_api):
    body = '{"name": "Triage \\ud83d\\ude00", "slug": "triage", "kind": "inference"}'
    response = staff_api.generic("POST", "/api/v1/services/", body, content_type="application/json")
    assert response.status_code == 201, response.content[:300]
    assert response.json()["name"] == "Triage \N{GRINNING FACE}"
