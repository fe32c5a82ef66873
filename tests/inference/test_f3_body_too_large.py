"""64 texts of 20,000 characters are allowed, but in CJK (3 bytes a character in UTF-8) that is past
DATA_UPLOAD_MAX_MEMORY_SIZE: Django's answer was a 400 `bad_request` naming a setting, not the limit (under DEBUG
an HTML page). It is the 413 `request_too_large` JSON the product gives a chunked body past the same limit
(apps/core/chunked.py), naming the limit in bytes, with DEBUG on or off. No model is loaded: the body is refused
while it is read."""

import json

import pytest
from django.test import Client

from apps.core.chunked import chunked_body_limit

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("endpoint", ["embed", "generate"])
def test_a_body_past_the_upload_limit_is_a_json_413_naming_the_limit(issue_token, settings, debug, endpoint):
    settings.DEBUG = debug
    texts = ["診" * 20_000] * 64
    body = {"inputs": texts} if endpoint == "embed" else {"prompt": "".join(texts[:44])}
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) > chunked_body_limit()
    response = Client(raise_request_exception=False).post(
        f"/api/v1/inference/clinical-embeddings/{endpoint}", raw, content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {issue_token('inference')}",
    )  # fmt: skip
    assert response.status_code == 413, response.content[:200]  # was 400 (HTML under DEBUG)
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": f"The request body is larger than {chunked_body_limit()} bytes.",
        "code": "request_too_large",
    }
