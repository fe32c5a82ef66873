"""Host and cache alert rules belong to no service and measure no service's traffic: an Operator or a Viewer
from whom a service is hidden sees their alerts (they read "No alert is firing" beside a firing CPU alert),
while a rule of no service on request figures (every route's, the hidden service's with them) stays hidden."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import VIEWERS
from apps.metrics import selectors
from apps.metrics.models import Alert, AlertRule
from apps.services.selectors import visible_service_ids
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def firing():
    hidden = service_create(name="Oncology triage", slug="onco", route_prefix="api/v1/onco/")
    hidden.visible_to.add(Group.objects.create(name="Oncology AI"))
    seen = service_create(name="Patient API", slug="patients", route_prefix="api/v1/patients/")
    rules = {
        "cpu": AlertRule.objects.create(name="Host CPU", metric="cpu_pct", threshold=80),
        "memory": AlertRule.objects.create(name="Host memory", metric="memory_pct", threshold=90),
        "cache": AlertRule.objects.create(name="Cache hits", metric="cache_hit_rate_pct", operator="lt", threshold=50),
        "p95-all": AlertRule.objects.create(name="p95 everywhere", metric="p95_ms", threshold=500),
        "p95-onco": AlertRule.objects.create(name="p95 onco", metric="p95_ms", threshold=500, service=hidden),
        "p95-patients": AlertRule.objects.create(name="p95 patients", metric="p95_ms", threshold=500, service=seen),
    }
    for rule in rules.values():
        Alert.objects.create(rule=rule, value=99, last_value=99, message=f"{rule.name} firing")
    return rules


SEEN = {"Host CPU", "Host memory", "Cache hits", "p95 patients"}


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_host_and_cache_alerts_of_no_service_are_listed_for_those_a_service_is_hidden_from(
    api, operator_user, django_user_model, firing, role
):
    user = operator_user
    if role == "viewer":
        user = django_user_model.objects.create_user("viewer", "v@example.org", "pw-viewer-long-1", is_staff=True)
        user.groups.add(Group.objects.get(name=VIEWERS))
    api.force_login(user)
    response = api.get("/api/v1/metrics/alerts/", {"state": "firing"})
    assert response.status_code == 200, response.content
    assert {row["rule"] for row in response.json()["results"]} == SEEN  # the old list: "p95 patients" only


def test_the_live_feed_shows_them_too(operator_user, firing):
    snapshot = selectors.live_snapshot(visible_services=visible_service_ids(operator_user))
    assert {alert["rule"] for alert in snapshot["alerts"]} == SEEN


def test_whoever_sees_every_service_sees_every_alert(admin_client, firing):
    response = admin_client.get("/api/v1/metrics/alerts/", {"state": "firing"})
    assert {row["rule"] for row in response.json()["results"]} == {rule.name for rule in firing.values()}
