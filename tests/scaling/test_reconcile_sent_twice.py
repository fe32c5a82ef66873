"""The scaling checker (beat, every minute) sent by two beats (an evicted pod terminating beside its
replacement): both runs, at once (threads here, each with its own PostgreSQL session), judge the same failed
or pending state due and each send its apply. The first apply failing at once (a cluster refusing) left the
policy FAILED again, and the second send applied it once more: an attempt spent and the backoff skipped. Now
an apply sent for a state that moved on does nothing; one by hand (admin) still applies."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.scaling import services, tasks
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service
from tests.helpers import at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(settings, tmp_path, monkeypatch) -> list[tuple]:
    """A cluster whose kubeconfig cannot be loaded (every apply fails at once, with the reason), and the
    applies the checker sends, kept to be run by the test."""
    settings.SCALING_KUBECONFIG = str(tmp_path / "no-such-kubeconfig")
    calls: list[tuple] = []
    monkeypatch.setattr(tasks.apply_policy, "delay", lambda *args: calls.append(args))
    return calls


def _policy() -> ScalingPolicy:
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    return services.scaling_policy_ensure(service, history_source="synthetic", predictive=False)[0]


def test_two_checkers_sending_one_pending_state_apply_it_once(sent):
    policy = _policy()
    at_once(services.policies_reconcile)
    assert len(sent) == 2 and sent[0] == sent[1]  # both judged the same state due
    for args in sent:
        tasks.apply_policy(*args)
    policy.refresh_from_db()
    assert policy.apply_state == ScalingPolicy.ApplyState.FAILED and "kubeconfig" in policy.apply_error.lower()
    assert policy.apply_attempts == 1


def test_an_apply_by_hand_applies_whatever_state_it_finds(sent):
    policy = _policy()
    services.policies_reconcile()
    tasks.apply_policy(*sent[0])
    tasks.apply_policy(policy.pk)  # admin's "apply now"
    policy.refresh_from_db()
    assert policy.apply_attempts == 2


def test_the_next_checker_pass_sends_the_next_due_state(sent):
    policy = _policy()
    services.policies_reconcile()
    tasks.apply_policy(*sent[0])
    policy.refresh_from_db()  # failed long ago: its retry is due
    ScalingPolicy.objects.filter(pk=policy.pk).update(state_changed_at=policy.state_changed_at.replace(year=2020))
    services.policies_reconcile()
    assert len(sent) == 2 and sent[1] != sent[0]
    tasks.apply_policy(*sent[1])
    policy.refresh_from_db()
    assert policy.apply_attempts == 2


@pytest.fixture
def withdrawals_sent(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(tasks.withdraw_policy, "delay", lambda *args: calls.append(args))
    return calls


def test_two_checkers_sending_one_withdrawal_spend_one_attempt(sent, withdrawals_sent):
    """A disabled policy whose autoscalers the cluster refused to remove: FAILED, its retry due."""
    policy = _policy()
    applied = [{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "namespace": "x", "name": "t"}]
    ScalingPolicy.objects.filter(pk=policy.pk).update(
        enabled=False, applied_objects=applied, apply_state=ScalingPolicy.ApplyState.FAILED, apply_attempts=1,
        state_changed_at=timezone.now().replace(year=2020),
    )  # fmt: skip
    at_once(services.policies_reconcile)
    assert len(withdrawals_sent) == 2 and withdrawals_sent[0] == withdrawals_sent[1]
    for args in withdrawals_sent:
        tasks.withdraw_policy(*args)
    policy.refresh_from_db()
    assert policy.apply_state == ScalingPolicy.ApplyState.FAILED and policy.apply_attempts == 2
