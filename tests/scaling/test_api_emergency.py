"""The scaling API says why a policy is in emergency mode: set by hand, or its alert rule firing."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import VIEWERS
from apps.metrics.models import Alert, AlertRule
from apps.scaling import services
from apps.scaling.models import ScalingPolicy
from apps.scaling.selectors import scaling_overview
from apps.services.models import Service

pytestmark = pytest.mark.django_db

URL = "/api/v1/scaling/policies/"


@pytest.fixture
def viewer_api(api, django_user_model):
    user = django_user_model.objects.create_user("viewer", "v@example.org", "pw-viewer-1", is_staff=True)
    user.groups.set(Group.objects.filter(name=VIEWERS))
    api.force_login(user)
    return api


def _policy(slug: str) -> ScalingPolicy:
    service = Service.objects.create(name=slug.title(), slug=slug)
    return services.scaling_policy_ensure(service, predictive=False, emergency_min_replicas=8)[0]


def _row(api, policy: ScalingPolicy) -> dict:
    response = api.get(URL)
    assert response.status_code == 200
    return next(row for row in response.json()["results"] if row["id"] == policy.pk)


def _firing_rule(name: str, *, enabled: bool = True) -> AlertRule:
    rule = AlertRule.objects.create(name=name, metric="p95_ms", operator="gt", threshold=500, enabled=enabled)
    Alert.objects.create(rule=rule, state="firing", value=900, last_value=900, message="p95 900 ms")
    return rule


def test_emergency_mode_set_by_hand_is_said_so(viewer_api):
    policy = services.emergency_mode_set(_policy("triage"), on=True)
    row = _row(viewer_api, policy)
    assert (row["emergency_mode"], row["emergency_manual"], row["emergency_alert_rule"]) == (True, True, None)
    assert row["floor_replicas"] == 8


def test_emergency_mode_set_on_again_drops_an_end_already_past():
    """An end left from an earlier time switched the mode off at the checker's next pass, without a word."""
    from datetime import timedelta

    from django.core.exceptions import ValidationError
    from django.utils import timezone

    policy = _policy("triage")
    ScalingPolicy.objects.filter(pk=policy.pk).update(emergency_until=timezone.now() - timedelta(days=3))
    policy.refresh_from_db()
    policy = services.emergency_mode_set(policy, on=True)
    services.policies_reconcile()
    policy.refresh_from_db()
    assert (policy.emergency_mode, policy.emergency_manual, policy.emergency_until) == (True, True, None)

    policy.emergency_manual, policy.emergency_until = False, timezone.now() + timedelta(hours=2)
    with pytest.raises(ValidationError) as refused:
        policy.full_clean()
    assert "emergency_until" in refused.value.message_dict


def test_emergency_mode_held_by_a_firing_rule_names_the_rule(viewer_api):
    policy = _policy("triage")
    rule = _firing_rule("ED surge")
    ScalingPolicy.objects.filter(pk=policy.pk).update(emergency_alert_rule=rule, emergency_mode=True)
    row = _row(viewer_api, policy)
    assert row["emergency_mode"] and not row["emergency_manual"]
    assert row["emergency_alert_rule"] == {
        "id": rule.pk,
        "name": "ED surge",
        "hidden": False,
        "enabled": True,
        "firing": True,
    }


def test_a_disabled_rules_leftover_alert_is_not_reported_as_firing(viewer_api):
    policy = _policy("triage")
    rule = _firing_rule("Old surge", enabled=False)
    ScalingPolicy.objects.filter(pk=policy.pk).update(emergency_alert_rule=rule)
    row = _row(viewer_api, policy)
    assert row["emergency_alert_rule"]["firing"] is False and row["emergency_alert_rule"]["enabled"] is False
    assert row["emergency_manual"] is False


def test_off_with_no_rule(viewer_api):
    row = _row(viewer_api, _policy("triage"))
    assert (row["emergency_mode"], row["emergency_manual"], row["emergency_alert_rule"]) == (False, False, None)


def test_emergency_mode_cannot_be_set_through_this_api(viewer_api):
    policy = _policy("triage")
    for method in (viewer_api.post, viewer_api.patch, viewer_api.put):
        assert method(URL, {"emergency_manual": True}, format="json").status_code in (403, 405)
    policy.refresh_from_db()
    assert not policy.emergency_manual and not policy.emergency_mode


def test_the_sources_of_every_policy_cost_no_query_of_their_own(django_assert_num_queries):
    """Read with the policies themselves: the overview costs the same with or without rules to name."""
    policies = [_policy(slug) for slug in ("a-one", "b-two", "c-three")]
    with django_assert_num_queries(1 + 6 * len(policies)):  # the policies, then forecasts and plan per policy
        scaling_overview()
    rule = _firing_rule("Surge")
    ScalingPolicy.objects.filter(pk=policies[1].pk).update(emergency_alert_rule=rule)
    with django_assert_num_queries(1 + 6 * len(policies)):
        rows = scaling_overview()
    with django_assert_num_queries(3 + 6 * len(policies)):  # and which rules a viewer may see, at once
        scaling_overview(visible_services=frozenset(policy.service_id for policy in policies))
    assert [row["emergency_alert_rule"] and row["emergency_alert_rule"]["name"] for row in rows] == [
        None,
        "Surge",
        None,
    ]


def test_the_api_says_why_a_metric_has_no_fresh_forecast(viewer_api, settings):
    """A service in its first days (or after a long gap) had its forecasts skipped with the reason only in a
    worker's log: the dashboard showed no forecast, or yesterday's as if current, and never why."""
    settings.SCALING_HISTORY_DAYS = 4
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    policy = services.scaling_policy_ensure(service, history_source="metrics")[0]
    services.forecasts_refresh(services=[service])
    skipped = _row(viewer_api, policy)["forecast_skipped"]
    assert skipped["request_rate"] == "triage request_rate: not enough history, 0 hours, 72 needed."
    assert skipped["response_time"].startswith("triage response_time: not enough history")

    ScalingPolicy.objects.filter(pk=policy.pk).update(history_source="synthetic")
    services.forecasts_refresh(services=[service])
    assert _row(viewer_api, policy)["forecast_skipped"] == {}  # every metric forecast this time


def test_a_rule_of_a_service_hidden_from_the_viewer_is_neither_named_nor_its_state_told(viewer_api):
    """An admin may make another service's rule the one a policy follows: a viewer who may not see that service
    read its rule's name and whether it fired on the Scaling page."""
    policy = _policy("triage")
    hidden = Service.objects.create(name="Oncology triage", slug="onco-triage")
    hidden.visible_to.add(Group.objects.create(name="Oncology"))
    rule = _firing_rule("Oncology p95 surge")
    AlertRule.objects.filter(pk=rule.pk).update(service=hidden)
    ScalingPolicy.objects.filter(pk=policy.pk).update(emergency_alert_rule=rule, emergency_mode=True)

    row = _row(viewer_api, policy)
    assert row["emergency_alert_rule"] == {"id": None, "name": None, "hidden": True, "enabled": None, "firing": None}
    assert row["emergency_mode"] is True  # the policy's own state, the viewer's to see
    assert "Oncology" not in str(viewer_api.get(URL).json())

    # One who sees the service reads the rule as before.
    admin_row = next(row for row in scaling_overview() if row["id"] == policy.pk)
    assert admin_row["emergency_alert_rule"]["name"] == "Oncology p95 surge"
    assert admin_row["emergency_alert_rule"]["firing"] is True
