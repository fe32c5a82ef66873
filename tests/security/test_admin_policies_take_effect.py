"""A policy saved on its admin page is what the API does next: a rate limit lowered there refuses the next
request past it, and a cache TTL shortened there stops serving what the longer one stored. Both are saved
through the whole change page, as an admin saves them, and proved with requests to the patient API."""

from __future__ import annotations

import time
from datetime import date

import pytest

from apps.caching.models import CachePolicy
from apps.clinical.models import Patient
from apps.clinical.services import patient_create
from apps.ratelimits import selectors
from apps.ratelimits.models import RateLimitPolicy
from tests.admin_pages import page_data

pytestmark = pytest.mark.django_db
DEADLINE_SECONDS = 60  # each process hears of an edit within about a second


@pytest.fixture
def patient() -> Patient:
    return patient_create(mrn="MRN-404001", family_name="Keller", given_name="Ida", birth_date=date(1961, 2, 3),
                          sex="female")  # fmt: skip


@pytest.fixture
def reader(api, issue_token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token('patient:read', name='ward-reader')}")
    return api


def _save_page(admin_client, url: str, changes: dict, capture) -> None:
    page = admin_client.get(url)
    with capture(execute=True):
        response = admin_client.post(url, {**page_data(page.context), **changes})
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response


def test_a_rate_limit_lowered_in_admin_refuses_the_next_request_past_it(
    admin_client, reader, patient, django_capture_on_commit_callbacks
):
    policy = RateLimitPolicy.objects.get(scope="patient_data")
    url = f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/"
    _save_page(admin_client, url, {"requests": "2", "burst_per_second": ""}, django_capture_on_commit_callbacks)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while selectors.active_policy("patient_data").requests != 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    responses = [reader.get(f"/api/v1/patients/{patient.pk}/") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0]["RateLimit-Limit"] == "2"


def test_a_cache_ttl_shortened_in_admin_stops_serving_what_the_longer_one_stored(
    admin_client, reader, patient, django_capture_on_commit_callbacks
):
    url = f"/api/v1/patients/{patient.pk}/"
    assert reader.get(url).json()["family_name"] == "Keller"
    Patient.objects.filter(pk=patient.pk).update(family_name="Kellner")  # behind the cache: no invalidation
    assert reader.get(url).json()["family_name"] == "Keller", "the card is not served from the cache"
    policy = CachePolicy.objects.get(namespace="patient_data")
    _save_page(admin_client, f"/admin/caching/cachepolicy/{policy.pk}/change/",
               {"ttl_seconds": str(policy.ttl_seconds // 2)}, django_capture_on_commit_callbacks)  # fmt: skip
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (name := reader.get(url).json()["family_name"]) == "Keller" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert name == "Kellner"
