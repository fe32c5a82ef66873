"""Who may keep an alert rule of no service is one service-layer rule (alert_rule_scope_check), which admin's
form and list call: a viewer from whom a service is hidden keeps one only on a host or cache metric, since a
request figure of no service sums every route's traffic, hidden services' included. The rule lived in an admin
form's clean(), where no other path could reach it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from apps.metrics.models import AlertRule
from apps.metrics.selectors import SHARED_ALERT_METRICS
from apps.metrics.services import alert_rule_scope_check
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def services():
    hidden, _ = service_ensure(slug="c-onco", name="Oncology triage c")
    hidden.visible_to.add(Group.objects.create(name="Oncology AI c"))
    seen, _ = service_ensure(slug="c-ward", name="Ward API c")
    return {"hidden": hidden, "seen": seen}


def test_a_viewer_not_seeing_all_traffic_is_refused_a_request_figure_of_no_service(services):
    with pytest.raises(ValidationError) as refused:
        alert_rule_scope_check(
            service_id=None, metric="error_rate_pct", visible_services=frozenset({services["seen"].pk})
        )
    assert set(refused.value.error_dict) == {"metric"}


@pytest.mark.parametrize("metric", SHARED_ALERT_METRICS)
def test_host_and_cache_rules_of_no_service_are_every_viewers(services, metric):
    alert_rule_scope_check(service_id=None, metric=metric, visible_services=frozenset({services["seen"].pk}))


def test_a_rule_of_a_service_and_a_viewer_seeing_all_traffic_pass(services):
    seen = services["seen"].pk
    alert_rule_scope_check(service_id=seen, metric="error_rate_pct", visible_services=frozenset({seen}))
    alert_rule_scope_check(service_id=None, metric="error_rate_pct", visible_services=None)
    everything = frozenset({seen, services["hidden"].pk})
    alert_rule_scope_check(service_id=None, metric="p95_ms", visible_services=everything)


def test_the_admin_list_row_is_checked_by_the_same_rule(client, operator_user, services):
    """A list row edits enabled and threshold only; the row form still goes through the rule, so a rule of
    no service on a shared metric saves from the list."""
    rule = AlertRule.objects.create(name="Host CPU c", metric="cpu_pct", threshold=80)
    client.force_login(operator_user)
    data = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": rule.pk, "form-0-enabled": "on",
            "form-0-threshold": "85", "_save": "Save"}  # fmt: skip
    assert client.post("/admin/metrics/alertrule/", data).status_code == 302
    rule.refresh_from_db()
    assert rule.threshold == 85
