"""Admin offers the alert rules the API shows: a host or cache rule of no service (SHARED_ALERT_METRICS) is
every staff user's, as in the alert list and the live feed, while admin showed an Operator from whom one
service is hidden no rule of no service at all (neither in the rule list nor as a scaling policy's emergency
rule). A rule of the hidden service, and a request-figure rule of no service (every route's), stay hidden."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.metrics.models import Alert, AlertRule
from apps.scaling.services import scaling_policy_ensure
from apps.services.selectors import sees_all_traffic, visible_service_ids
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db

MINE = {"Host CPU", "Cache hits", "p95 everywhere", "Oncology triage p95", "Ward API p95"}  # beside the seeded rules


@pytest.fixture
def rules():
    hidden, _ = service_ensure(slug="onco-triage", name="Oncology triage")
    hidden.visible_to.add(Group.objects.create(name="Oncology AI"))
    seen, _ = service_ensure(slug="ward-api", name="Ward API")
    return {
        "cpu": AlertRule.objects.create(name="Host CPU", metric="cpu_pct", threshold=80),
        "cache": AlertRule.objects.create(name="Cache hits", metric="cache_hit_rate_pct", operator="lt", threshold=50),
        "p95-all": AlertRule.objects.create(name="p95 everywhere", metric="p95_ms", threshold=500),
        "p95-onco": AlertRule.objects.create(
            name="Oncology triage p95", metric="p95_ms", threshold=2000, service=hidden
        ),
        "p95-ward": AlertRule.objects.create(name="Ward API p95", metric="p95_ms", threshold=2000, service=seen),
        "seen": seen,
    }


@pytest.fixture
def operator(client, operator_user, rules):
    assert not sees_all_traffic(visible_service_ids(operator_user))  # the Oncology service is hidden from them
    client.force_login(operator_user)
    return client


def test_a_scaling_policy_offers_an_operator_the_shared_cpu_rule_not_a_hidden_service_s(operator, rules):
    policy, _ = scaling_policy_ensure(rules["seen"])
    form = operator.get(f"/admin/scaling/scalingpolicy/{policy.pk}/change/").context["adminform"].form
    offered = {str(rule) for rule in form.fields["emergency_alert_rule"].queryset}
    assert "Host CPU" in offered and "Cache hits" in offered  # the old form: neither
    assert "Ward API p95" in offered
    assert "Oncology triage p95" not in offered and "p95 everywhere" not in offered


def test_the_rule_list_shows_an_operator_the_shared_rules(operator, rules):
    page = operator.get("/admin/metrics/alertrule/")
    assert page.status_code == 200
    listed = {rule.name for rule in page.context["cl"].result_list} & MINE
    assert listed == {"Host CPU", "Cache hits", "Ward API p95"}


def test_an_operator_opens_the_shared_cpu_rule_but_not_a_hidden_service_s(operator, rules):
    assert operator.get(f"/admin/metrics/alertrule/{rules['cpu'].pk}/change/").status_code == 200
    assert operator.get(f"/admin/metrics/alertrule/{rules['p95-onco'].pk}/change/").status_code == 302  # not found


def test_the_alert_list_shows_an_operator_the_shared_rules_alerts(operator, rules):
    for key in ("cpu", "cache", "p95-all", "p95-onco", "p95-ward"):
        Alert.objects.create(rule=rules[key], value=99, last_value=99, message="firing")
    page = operator.get("/admin/metrics/alert/")
    assert page.status_code == 200
    assert {alert.rule.name for alert in page.context["cl"].result_list} & MINE == {
        "Host CPU",
        "Cache hits",
        "Ward API p95",
    }


def test_an_administrator_is_offered_every_rule(admin_client, rules):
    policy, _ = scaling_policy_ensure(rules["seen"])
    form = admin_client.get(f"/admin/scaling/scalingpolicy/{policy.pk}/change/").context["adminform"].form
    assert {str(rule) for rule in form.fields["emergency_alert_rule"].queryset} >= MINE
