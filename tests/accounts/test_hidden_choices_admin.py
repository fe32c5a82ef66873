"""Forms offer only what the editor sees: an Operator of no oncology group was offered the oncology service in a
rate-limit policy's "service" list and its alert rules in a scaling policy's emergency rule list."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import OPERATORS
from apps.metrics.models import AlertRule
from apps.ratelimits.models import RateLimitPolicy
from apps.scaling.services import scaling_policy_ensure
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def hidden():
    team = Group.objects.create(name="Oncology AI")
    service, _ = service_ensure(slug="onco-triage", name="Oncology triage")
    service.visible_to.add(team)
    rule = AlertRule.objects.create(name="Oncology triage p95", metric="p95_ms", threshold=2000, service=service)
    return service, rule


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_user("op", "op@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set([Group.objects.get(name=OPERATORS)])
    client.force_login(user)
    return client


def test_a_rate_limit_policy_form_names_no_hidden_service(operator, hidden):
    policy = RateLimitPolicy.objects.get(scope="ai_inference")
    page = operator.get(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/").content.decode()
    assert "Oncology triage" not in page


def test_an_operator_s_save_keeps_the_service_an_administrator_chose(operator, hidden, admin_client):
    service, _rule = hidden
    policy = RateLimitPolicy.objects.get(scope="audit_logs")
    RateLimitPolicy.objects.filter(pk=policy.pk).update(service=service)
    form = operator.get(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/").context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}
    data = {name: "on" if value is True else value for name, value in data.items()}
    data |= {"requests": 25, "adjustments-TOTAL_FORMS": 0, "adjustments-INITIAL_FORMS": 0}
    response = operator.post(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    policy.refresh_from_db()
    assert policy.requests == 25 and policy.service == service
    # An administrator still chooses it.
    assert (
        "Oncology triage" in admin_client.get(f"/admin/ratelimits/ratelimitpolicy/{policy.pk}/change/").content.decode()
    )


def test_a_scaling_policy_form_offers_no_hidden_alert_rule(operator, hidden):
    mine, _ = service_ensure(slug="ward-api", name="Ward API")
    policy, _ = scaling_policy_ensure(mine)
    AlertRule.objects.create(name="Ward API p95", metric="p95_ms", threshold=2000, service=mine)
    form = operator.get(f"/admin/scaling/scalingpolicy/{policy.pk}/change/").context["adminform"].form
    offered = {str(rule) for rule in form.fields["emergency_alert_rule"].queryset}
    assert "Ward API p95" in offered and "Oncology triage p95" not in offered


@pytest.fixture
def policy_following_hidden_rule(hidden):
    from apps.scaling.models import ScalingPolicy

    _service, rule = hidden
    mine, _ = service_ensure(slug="ward-api", name="Ward API")
    policy, _ = scaling_policy_ensure(mine)
    ScalingPolicy.objects.filter(pk=policy.pk).update(emergency_alert_rule=rule)
    policy.refresh_from_db()
    return policy


@pytest.mark.parametrize("role", ["Viewers", OPERATORS])
def test_a_scaling_policy_page_does_not_name_a_hidden_rule_it_follows(
    client, django_user_model, policy_following_hidden_rule, role
):
    """The rule a policy follows was shown by name, with a link to it, to every Viewer and Operator."""
    user = django_user_model.objects.create_user("someone", "s@example.org", "pw-Long-enough-1", is_staff=True)
    user.groups.set([Group.objects.get(name=role)])
    client.force_login(user)
    page = client.get(f"/admin/scaling/scalingpolicy/{policy_following_hidden_rule.pk}/change/").content.decode()
    rule = policy_following_hidden_rule.emergency_alert_rule
    assert "Oncology triage p95" not in page and f"/admin/metrics/alertrule/{rule.pk}/" not in page
    assert "An alert rule you cannot see" in page


def test_an_operator_s_save_keeps_the_hidden_rule_and_emergency_off_does_not_name_it(
    operator, policy_following_hidden_rule
):
    from apps.scaling.models import ScalingPolicy

    policy = policy_following_hidden_rule
    url = f"/admin/scaling/scalingpolicy/{policy.pk}/change/"
    form = operator.get(url).context["adminform"].form
    assert "emergency_alert_rule" not in form.fields
    values = {name: form[name].value() for name in form.fields}
    data = {name: value for name, value in values.items() if value is not None and value is not False}
    data = {name: "on" if value is True else value for name, value in data.items()}
    data["min_replicas"] = 3
    response = operator.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    policy.refresh_from_db()
    assert policy.min_replicas == 3 and policy.emergency_alert_rule.name == "Oncology triage p95"

    ScalingPolicy.objects.filter(pk=policy.pk).update(emergency_mode=True, emergency_manual=True)
    response = operator.post(
        "/admin/scaling/scalingpolicy/",
        {"action": "emergency_off", "_selected_action": [policy.pk]},
        follow=True,
    )
    said = " ".join(str(m) for m in response.context["messages"])
    assert "Oncology" not in said
