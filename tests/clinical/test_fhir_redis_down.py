"""A posted FHIR search keeps its parameters in Redis for its next pages. With Redis unreachable that page
cannot be served: a 503 OperationOutcome with Retry-After (a temporary state), never a 500. The cache is
pointed at a port where nothing listens: a real refused connection, not a stand-in."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings

from apps.clinical.models import Patient
from tests.helpers import free_port

pytestmark = pytest.mark.django_db


def test_the_next_page_of_a_posted_search_with_redis_down_is_a_503(clinician, loaded):
    patient_id = Patient.objects.order_by("pk").first().pk
    first = clinician.post("/fhir/Observation/_search", f"patient={patient_id}&_count=2",
                           content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert first.status_code == 200, first.content[:300]
    next_url = next(link["url"] for link in first.json()["link"] if link["relation"] == "next")
    next_url = next_url.replace("http://testserver", "")
    unreachable = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    with override_settings(CACHES=unreachable):
        response = clinician.get(next_url)
    assert response.status_code == 503, response.content[:300]
    assert int(response["Retry-After"]) >= 1
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Redis is unavailable" in outcome["issue"][0]["diagnostics"]
    cache.close()
    assert clinician.get(next_url).status_code == 200  # Redis back: the same page, nothing lost


def test_an_unauthenticated_page_request_with_redis_down_is_a_401(api):
    """The 401's audit record reads which patients the stored search named: with Redis away it names none,
    and the refusal stands (it was a 500 from inside the refusal's own handling)."""
    unreachable = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    with override_settings(CACHES=unreachable):
        for path in ("/fhir/Observation?_search=abc", "/fhir/Patient?_search=abc"):
            response = api.get(path)
            assert response.status_code == 401, response.content[:300]
            assert response.json()["resourceType"] == "OperationOutcome"
    cache.close()
