"""The Rate limits page names API clients only to a reader whose admin shows them (accounts.view_apiclient):
a Viewer (403 on /admin/accounts/apiclient/) sees "API client #<id>" as the busiest and exempt clients."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.roles import ADMINISTRATORS, OPERATORS, VIEWERS
from apps.accounts.scopes import BENCHMARK
from apps.accounts.services import api_client_create
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.ratelimits import selectors
from apps.ratelimits.models import RateLimitPolicy

pytestmark = pytest.mark.django_db

SCOPE = "patient_data"


def _requests(*, client: str, count: int) -> None:
    route = next(route for route, named in selectors.route_scopes().items() if named == SCOPE)
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)
    histogram = new_histogram()
    histogram.record_value(1000)
    RequestRollup.objects.create(minute=minute, route=route, method="GET", status_class="2xx",
                                 client=client, count=count, histogram=histogram.encode())  # fmt: skip


@pytest.fixture
def traffic():
    RateLimitPolicy.objects.filter(scope=SCOPE).update(requests=200, period_seconds=60, adaptive=False)
    app = api_client_create(name="demo-clinical-app", scopes=["patient:read"]).client
    bench = api_client_create(name="benchmark-run-7-1", scopes=["patient:read", BENCHMARK]).client
    _requests(client=app.name, count=190)
    _requests(client=bench.name, count=2000)
    _requests(client="user:1", count=5)
    return app, bench


def _usage(api, user) -> dict:
    api.force_login(user)
    response = api.get("/api/v1/ratelimits/")
    assert response.status_code == 200
    return {row["scope"]: row for row in response.json()["results"]}[SCOPE]["usage"]


@pytest.mark.parametrize("role", [VIEWERS, OPERATORS])
def test_a_role_without_the_api_client_admin_sees_no_client_names(api, client, staff, traffic, role):
    app, bench = traffic
    user = staff("reader", role)
    client.force_login(user)
    assert client.get("/admin/accounts/apiclient/").status_code == 403
    usage = _usage(api, user)
    # The old page: "demo-clinical-app" and ["benchmark-run-7-1"].
    assert usage["busiest_client"] == f"API client #{app.pk}"
    assert usage["busiest_client_attempted"] == 190
    assert usage["exempt_clients"] == [f"API client #{bench.pk}"] and usage["exempt_requests"] == 2000
    assert "demo-clinical-app" not in str(usage) and "benchmark-run" not in str(usage)


def test_an_administrator_sees_the_client_names(api, client, staff, traffic):
    user = staff("adm", ADMINISTRATORS)
    client.force_login(user)
    assert client.get("/admin/accounts/apiclient/").status_code == 200
    usage = _usage(api, user)
    assert usage["busiest_client"] == "demo-clinical-app"
    assert usage["exempt_clients"] == ["benchmark-run-7-1"]


def test_a_signed_in_users_label_is_kept_for_a_viewer(api, staff):
    RateLimitPolicy.objects.filter(scope=SCOPE).update(requests=200, period_seconds=60, adaptive=False)
    _requests(client="user:42", count=50)
    usage = _usage(api, staff("reader", VIEWERS))
    assert usage["busiest_client"] == "user:42"


def test_with_no_reader_the_overview_names_no_client(traffic):
    app, _ = traffic
    rows = {row["scope"]: row for row in selectors.policy_overview()}
    assert rows[SCOPE]["usage"]["busiest_client"] == f"API client #{app.pk}"
