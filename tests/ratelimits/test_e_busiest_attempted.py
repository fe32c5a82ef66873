"""The Rate limits page's busiest client is named by what it attempted in a minute (admitted and refused), each
signed-in user by their own `user:<id>` label, a label that may carry an identifier never shown as it is, and
the scopes refusing most come first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.services import api_client_create
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import new_histogram
from apps.ratelimits import selectors

pytestmark = pytest.mark.django_db


def _route(scope: str) -> str:
    return next(route for route, named in selectors.route_scopes().items() if named == scope)


def _requests(scope: str, *, client: str, count: int, status_class: str = "2xx", minutes_ago: int = 2) -> None:
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)
    histogram = new_histogram()
    histogram.record_value(1000)
    RequestRollup.objects.create(minute=minute, route=_route(scope), method="GET", status_class=status_class,
                                 client=client, count=count, histogram=histogram.encode())  # fmt: skip


def _results(admin_client) -> list[dict]:
    response = admin_client.get("/api/v1/ratelimits/")
    assert response.status_code == 200
    return response.json()["results"]


def _usage(admin_client, scope: str) -> dict:
    return {row["scope"]: row for row in _results(admin_client)}[scope]["usage"]


def test_the_busiest_client_is_the_one_that_attempted_most_not_the_one_admitted_most(admin_client):
    """patient_data: 100/min. ehr-gateway sent 100, all admitted; user 7 sent 480, 381 refused."""
    api_client_create(name="ehr-gateway", scopes=["patient:read"])
    _requests("patient_data", client="ehr-gateway", count=100)
    _requests("patient_data", client="user:7", count=99)
    _requests("patient_data", client="user:7", count=381, status_class="429")
    _requests("patient_data", client="user:8", count=5)
    usage = _usage(admin_client, "patient_data")
    assert usage["busiest_client"] == "user:7"  # the old page: ehr-gateway, 100 of 100
    assert (usage["busiest_client_attempted"], usage["busiest_client_refused"]) == (480, 381)
    assert usage["busiest_client_per_minute"] == 99
    assert usage["busiest_client_limit_per_minute"] == 100
    assert usage["busiest_client_share"] == 0.99


def test_a_label_that_is_neither_a_client_nor_a_user_id_is_never_shown(admin_client):
    _requests("patient_data", client="user:MRN-00042", count=60)
    _requests("patient_data", client="Jane Doe", count=30, minutes_ago=3)
    usage = _usage(admin_client, "patient_data")
    assert usage["busiest_client"] == "unrecognised client"
    assert "MRN" not in str(usage) and "Jane" not in str(usage)


def test_the_scopes_refusing_most_come_first(admin_client):
    _requests("audit_logs", client="user:3", count=4, status_class="429")
    _requests("patient_data", client="user:3", count=9, status_class="429")
    scopes = [row["scope"] for row in _results(admin_client)]
    assert scopes[:2] == ["patient_data", "audit_logs"]
    rest = [row for row in _results(admin_client) if row["usage"]["refused"] == 0]
    assert [(row["priority"], row["scope"]) for row in rest] == sorted((row["priority"], row["scope"]) for row in rest)
