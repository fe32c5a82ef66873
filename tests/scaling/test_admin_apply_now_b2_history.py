""" "Apply to the cluster now" changed the cluster without a trace in the policy's history, unlike the
emergency actions: who sent an apply by hand, and when, was nowhere."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry

from apps.scaling import services, tasks
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/scaling/scalingpolicy/"


@pytest.fixture
def admin_session(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123"))
    return client


@pytest.fixture
def sent(monkeypatch, settings):
    settings.SCALING_KUBECONFIG = "/nonexistent/kubeconfig"  # configured; never read: the send is recorded
    ids = []
    monkeypatch.setattr(tasks.apply_policy, "delay", lambda pk, *args: ids.append(pk))
    return ids


def _apply_now(client, policy: ScalingPolicy) -> list[str]:
    response = client.post(CHANGELIST, {"action": "apply_now", "_selected_action": [policy.pk]}, follow=True)
    assert response.redirect_chain == [(CHANGELIST, 302)]
    return [str(message) for message in response.context["messages"]]


def test_apply_now_is_in_the_policy_history(admin_session, sent):
    service = Service.objects.create(name="Triage", slug="triage")
    policy, _ = services.scaling_policy_ensure(service, predictive=False)
    assert _apply_now(admin_session, policy) == ["Scaling of Triage: sent to the workers."]
    assert sent == [policy.pk]
    entries = LogEntry.objects.filter(object_id=str(policy.pk))
    assert [(entry.user.username, entry.action_flag, entry.get_change_message()) for entry in entries] == [
        ("root", CHANGE, "Apply to the cluster sent by hand (Apply to the cluster now).")
    ]


def test_apply_now_that_sends_nothing_logs_nothing(admin_session, sent):
    service = Service.objects.create(name="Triage", slug="triage")
    policy, _ = services.scaling_policy_ensure(service, predictive=False, enabled=False)
    _apply_now(admin_session, policy)
    ScalingPolicy.objects.filter(pk=policy.pk).update(enabled=True, apply_state=ScalingPolicy.ApplyState.APPLYING)
    policy.refresh_from_db()
    assert _apply_now(admin_session, policy) == ["Scaling of Triage: an apply is in flight; it was not sent twice."]
    assert sent == [] and not LogEntry.objects.filter(object_id=str(policy.pk)).exists()
