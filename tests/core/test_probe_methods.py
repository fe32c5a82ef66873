"""The probes (/healthz, /readyz, /metrics) answer a write with a JSON 405, not CSRF's HTML 403."""

import logging

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PROBES = ("/healthz", "/readyz", "/metrics")


@pytest.mark.parametrize("path", PROBES)
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_write_to_a_probe_is_a_json_405(path, method, caplog):
    """With CSRF enforced as in a real server, a POST to /healthz was Django's HTML 403 page, with a
    `django.security.csrf` warning logged for every such request."""
    client = Client(enforce_csrf_checks=True)
    with caplog.at_level(logging.WARNING, logger="django.security"):
        response = getattr(client, method)(path, data="{}", content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "method_not_allowed"
    assert not [record for record in caplog.records if record.name.startswith("django.security")]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_still_answer_get_and_head(path):
    client = Client(enforce_csrf_checks=True)
    assert client.get(path).status_code in (200, 503)
    head = client.head(path)
    assert head.status_code in (200, 503)
    assert "no-cache" in head["Cache-Control"] or "max-age=0" in head["Cache-Control"]
