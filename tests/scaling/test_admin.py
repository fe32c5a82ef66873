"""The scaling policy admin: its emergency actions say what they changed."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry

from apps.metrics.models import Alert, AlertRule
from apps.scaling import services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/scaling/scalingpolicy/"


@pytest.fixture
def admin_session(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123"))
    return client


def _act(client, action: str, policy: ScalingPolicy) -> list[str]:
    response = client.post(CHANGELIST, {"action": action, "_selected_action": [policy.pk]}, follow=True)
    assert response.redirect_chain == [(CHANGELIST, 302)]
    return [str(message) for message in response.context["messages"]]


def test_the_emergency_actions_say_what_they_changed(admin_session):
    service = Service.objects.create(name="Triage", slug="triage")
    policy, _ = services.scaling_policy_ensure(service, predictive=False, emergency_min_replicas=8)
    assert _act(admin_session, "emergency_on", policy) == [
        "Scaling of Triage: emergency mode on, the minimum lifted to 8 replicas."
    ]
    assert _act(admin_session, "emergency_on", policy) == ["Scaling of Triage: emergency mode was already on."]
    assert _act(admin_session, "emergency_off", policy) == [
        "Scaling of Triage: emergency mode off, the minimum back to 2 replicas."
    ]
    assert _act(admin_session, "emergency_off", policy) == ["Scaling of Triage: emergency mode was already off."]

    rule = AlertRule.objects.create(name="ED surge", metric="p95_ms", operator="gt", threshold=500)
    Alert.objects.create(rule=rule, state="firing", value=900, last_value=900, message="p95 900 ms")
    ScalingPolicy.objects.filter(pk=policy.pk).update(emergency_alert_rule=rule, emergency_mode=True)
    assert _act(admin_session, "emergency_off", policy) == [
        "Scaling of Triage: stays in emergency mode while alert rule ED surge fires."
    ]
    assert ScalingPolicy.objects.get(pk=policy.pk).emergency_mode


def test_who_set_emergency_mode_by_hand_and_when_is_in_the_policy_history(admin_session):
    """The actions changed the policy without a trace: who lifted a service's minimum, and who dropped it
    again, was nowhere (a saved form is in the admin's history; an action was not)."""
    service = Service.objects.create(name="Triage", slug="triage")
    policy, _ = services.scaling_policy_ensure(service, predictive=False, emergency_min_replicas=8)
    for action in ("emergency_on", "emergency_on", "emergency_off", "emergency_off"):  # each repeat changes nothing
        _act(admin_session, action, policy)
    entries = LogEntry.objects.filter(object_id=str(policy.pk)).order_by("action_time")
    assert [(entry.user.username, entry.action_flag, entry.get_change_message()) for entry in entries] == [
        ("root", CHANGE, "Emergency mode on by hand: minimum 8."),
        ("root", CHANGE, "Emergency mode off by hand."),
    ]
    history = admin_session.get(f"{CHANGELIST}{policy.pk}/history/")
    assert b"Emergency mode on by hand" in history.content


def test_setting_emergency_mode_by_hand_in_the_form_puts_it_in_force_at_once(admin_session):
    from django.forms.models import model_to_dict

    service = Service.objects.create(name="Triage", slug="triage")
    policy, _ = services.scaling_policy_ensure(service, predictive=False, emergency_min_replicas=8)
    form = {key: value for key, value in model_to_dict(policy).items() if value is not None and value is not False}
    form = {key: "on" if value is True else value for key, value in form.items()}
    response = admin_session.post(f"{CHANGELIST}{policy.pk}/change/", {**form, "emergency_manual": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    policy.refresh_from_db()
    assert policy.emergency_manual and policy.emergency_mode
    hpa = services.policy_manifests(policy)["triage-hpa.yaml"]
    assert hpa["spec"]["minReplicas"] == 8


@pytest.mark.parametrize(
    "selector",
    ['service="triage"}[5m])) or vector(1e9) or sum(rate(up{a="b"', 'service="triage"} or vector(1)', "triage", "a=b"],
)
def test_a_prometheus_selector_that_is_not_label_matchers_is_a_field_error(admin_session, selector):
    """The selector is pasted inside {...} of every history query: a '}' ended it and added to the query
    (the first one makes the request-rate query read a billion req/s), and anything else broke every query."""
    from django.forms.models import model_to_dict

    service = Service.objects.create(name="Triage", slug="triage")
    policy, _ = services.scaling_policy_ensure(service, predictive=False)
    form = {key: value for key, value in model_to_dict(policy).items() if value is not None and value is not False}
    form = {key: "on" if value is True else value for key, value in form.items()}
    response = admin_session.post(f"{CHANGELIST}{policy.pk}/change/", {**form, "prometheus_selector": selector})
    assert response.status_code == 200
    assert "Label matchers only" in response.context["adminform"].form.errors["prometheus_selector"][0]
    assert ScalingPolicy.objects.get(pk=policy.pk).prometheus_selector == ""

    valid = 'service="triage", namespace=~"medical-.*"'
    response = admin_session.post(f"{CHANGELIST}{policy.pk}/change/", {**form, "prometheus_selector": valid})
    assert response.status_code == 302
    assert ScalingPolicy.objects.get(pk=policy.pk).prometheus_selector == valid


def test_a_form_save_keeps_what_a_worker_wrote_to_the_policy_meanwhile(admin_session, monkeypatch):
    """The admin saved every column of the row it had read: an apply that finished between the read and the save
    lost its state and the objects it applied (a later disable or delete then left them on the cluster). The
    worker's write is made while the form is validated, after the admin read the row: deterministic."""
    from django.forms.models import model_to_dict

    service = Service.objects.create(name="Triage", slug="triage")
    policy, _ = services.scaling_policy_ensure(service, predictive=False)
    form = {key: value for key, value in model_to_dict(policy).items() if value is not None and value is not False}
    form = {key: "on" if value is True else value for key, value in form.items()}
    applied = [{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "namespace": "x", "name": "t"}]
    real_clean = ScalingPolicy.clean

    def worker_writes_meanwhile(self):
        ScalingPolicy.objects.filter(pk=self.pk).update(
            applied_objects=applied, applied_hash="a" * 64, forecast_skipped={"cpu": "no history"}
        )
        real_clean(self)

    monkeypatch.setattr(ScalingPolicy, "clean", worker_writes_meanwhile)
    response = admin_session.post(f"{CHANGELIST}{policy.pk}/change/", {**form, "max_replicas": 30})
    assert response.status_code == 302, response.content.decode()[:2000]
    policy.refresh_from_db()
    assert policy.max_replicas == 30
    assert policy.applied_objects == applied and policy.applied_hash == "a" * 64
    assert policy.forecast_skipped == {"cpu": "no history"}


def test_apply_now_on_a_disabled_policy_says_it_is_disabled_not_that_no_cluster_is_configured(admin_session, settings):
    """With a cluster configured, "Apply to the cluster now" on a disabled policy said "no cluster configured
    (SCALING_KUBECONFIG)": the operator went looking for a kubeconfig that was there all along."""
    settings.SCALING_KUBECONFIG = "/nonexistent/kubeconfig"  # configured; never read: nothing is sent
    service = Service.objects.create(name="Triage", slug="triage")
    policy, _ = services.scaling_policy_ensure(service, predictive=False, enabled=False)
    assert _act(admin_session, "apply_now", policy) == [
        "Scaling of Triage: the policy is disabled: nothing to apply (enable it to apply its manifests)."
    ]
    assert ScalingPolicy.objects.get(pk=policy.pk).apply_state == ScalingPolicy.ApplyState.NOT_CONFIGURED
