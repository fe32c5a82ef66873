"""Two callers the page cannot name (deleted clients) are two clients on the Rate limits page, not one
"unrecognised client" made of their sum and named busiest over a client that sent more than either."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import api_client_create
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.ratelimits import selectors
from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db

SCOPE = "patient_data"


def _requests(*, client: str, count: int, status_class: str = "2xx") -> None:
    route = next(route for route, named in selectors.route_scopes().items() if named == SCOPE)
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    histogram = new_histogram()
    histogram.record_value(1000)
    RequestRollup.objects.create(minute=minute, route=route, method="GET", status_class=status_class,
                                 client=client, count=count, histogram=histogram.encode())  # fmt: skip


def _usage(admin_client) -> dict:
    response = admin_client.get("/api/v1/ratelimits/")
    assert response.status_code == 200
    return {row["scope"]: row for row in response.json()["results"]}[SCOPE]["usage"]


def test_deleted_clients_are_not_summed_into_one_busiest_client(admin_client):
    RateLimitPolicy.objects.filter(scope=SCOPE).update(requests=200, period_seconds=60, adaptive=False)
    api_client_create(name="demo-clinical-app", scopes=["patient:read"])
    _requests(client="gone-a", count=150)
    _requests(client="gone-b", count=150)
    _requests(client="demo-clinical-app", count=190)
    usage = _usage(admin_client)
    # The old page: "unrecognised client", attempted 300, share 1.5.
    assert usage["busiest_client"] == "demo-clinical-app"
    assert usage["busiest_client_attempted"] == 190
    assert usage["busiest_client_share"] == 0.95
    assert usage["requests"] == 490


def test_an_unrecognised_busiest_client_is_still_shown_as_unrecognised(admin_client):
    RateLimitPolicy.objects.filter(scope=SCOPE).update(requests=200, period_seconds=60, adaptive=False)
    api_client_create(name="demo-clinical-app", scopes=["patient:read"])
    _requests(client="gone-a", count=150)
    _requests(client="gone-b", count=120)
    _requests(client="gone-b", count=40, status_class="429")
    _requests(client="demo-clinical-app", count=100)
    usage = _usage(admin_client)
    assert usage["busiest_client"] == "unrecognised client"
    assert (usage["busiest_client_attempted"], usage["busiest_client_refused"]) == (160, 40)
    assert "gone-" not in str(usage)
