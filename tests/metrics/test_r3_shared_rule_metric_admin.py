"""A viewer from whom a service is hidden edits the shared host and cache rules of no service in admin, but may
not turn one (or add one) into a request-figure rule of no service: that sums every route's traffic, hidden
services' included, and posts it wherever the rule's webhook points. An Operator changed "CPU above 80%" to
error_rate_pct with a webhook: 302, saved, and the rule left their view."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.metrics.models import AlertRule
from apps.services.selectors import sees_all_traffic, visible_service_ids
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db

URL = "/admin/metrics/alertrule/"
FORM = {"enabled": "on", "operator": "gt", "threshold": 80, "window_minutes": 5, "for_seconds": 120,
        "hysteresis_pct": 10, "min_requests": 20, "severity": "warning"}  # fmt: skip
HOOK = "https://example.org/hook"


@pytest.fixture
def services():
    hidden, _ = service_ensure(slug="onco-triage", name="Oncology triage")
    hidden.visible_to.add(Group.objects.create(name="Oncology AI"))
    seen, _ = service_ensure(slug="ward-api", name="Ward API")
    return {"hidden": hidden, "seen": seen}


@pytest.fixture
def operator(client, operator_user, services):
    assert not sees_all_traffic(visible_service_ids(operator_user))
    client.force_login(operator_user)
    return client


@pytest.fixture
def cpu_rule():
    return AlertRule.objects.create(name="Host CPU r3", metric="cpu_pct", threshold=80)


def test_an_operator_cannot_turn_the_shared_cpu_rule_into_an_every_route_rule(operator, cpu_rule):
    data = {**FORM, "name": cpu_rule.name, "metric": "error_rate_pct", "threshold": 5, "webhook_url": HOOK}
    response = operator.post(f"{URL}{cpu_rule.pk}/change/", data)
    assert response.status_code == 200  # the old form: 302, saved
    assert "metric" in response.context["adminform"].form.errors
    cpu_rule.refresh_from_db()
    assert cpu_rule.metric == "cpu_pct" and not cpu_rule.webhook_url


def test_an_operator_cannot_add_an_every_route_rule(operator):
    response = operator.post(f"{URL}add/", {**FORM, "name": "errors everywhere", "metric": "error_rate_pct"})
    assert response.status_code == 200
    assert "metric" in response.context["adminform"].form.errors
    assert not AlertRule.objects.filter(name="errors everywhere").exists()


def test_an_operator_still_edits_the_shared_rule_and_adds_rules_of_a_seen_service(operator, cpu_rule, services):
    data = {**FORM, "name": cpu_rule.name, "metric": "memory_pct", "threshold": 90, "webhook_url": HOOK}
    assert operator.post(f"{URL}{cpu_rule.pk}/change/", data).status_code == 302
    cpu_rule.refresh_from_db()
    assert cpu_rule.metric == "memory_pct" and cpu_rule.threshold == 90
    data = {**FORM, "name": "ward errors", "metric": "error_rate_pct", "threshold": 5, "service": services["seen"].pk}
    assert operator.post(f"{URL}add/", data).status_code == 302
    assert AlertRule.objects.get(name="ward errors").service == services["seen"]


def test_an_administrator_may_keep_an_every_route_rule(admin_client, cpu_rule, services):
    data = {**FORM, "name": cpu_rule.name, "metric": "error_rate_pct", "threshold": 5, "webhook_url": HOOK}
    assert admin_client.post(f"{URL}{cpu_rule.pk}/change/", data).status_code == 302
    cpu_rule.refresh_from_db()
    assert cpu_rule.metric == "error_rate_pct" and cpu_rule.service is None
