"""A disabled policy's withdrawal, and an apply whose request timed out.

No Kubernetes API server can run here: the cluster is the fake one on loopback (tests/scaling/fake_servers.py),
and a slow or timing-out cluster is a wrapper around the kube calls, at the exact point where the API server
is being waited on.
"""

import threading

import pytest
import urllib3
from django.db import DatabaseError, connection, transaction

from apps.scaling import kube, services
from apps.scaling.models import ScalingPolicy
from apps.services.models import Service

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "withdrawing"


def _policy() -> ScalingPolicy:
    service = Service.objects.create(name=NAME, slug=NAME, route_prefix=f"api/{NAME}/")
    policy = services.scaling_policy_ensure(service, history_source="synthetic", predictive=False)[0]
    policy.refresh_from_db()
    return policy


def _applied(cluster) -> ScalingPolicy:
    policy = _policy()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    assert cluster.autoscalers_of("medical-ai", NAME) == [NAME]
    return policy


def _in_another_connection(action):
    """Runs `action` in a thread of its own (its own database connection, as an admin request's or the forecast
    worker's): what it returned or raised."""
    outcome = {}

    def run():
        try:
            outcome["value"] = action()
        except Exception as exc:  # noqa: BLE001 - handed to the test to judge
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    return outcome


def _during_the_removal(monkeypatch, action) -> list:
    """Runs `action` while the withdrawal waits on the API server (after its deletes went out, before their
    answer is recorded): what it gave."""
    real = kube.remove_objects
    seen = []

    def removing(refs, **options):
        done = real(refs, **options)
        if not seen:
            seen.append(action())
        return done

    monkeypatch.setattr(kube, "remove_objects", removing)
    return seen


def _lock_at_once(policy_id: int):
    with transaction.atomic():
        return ScalingPolicy.objects.select_for_update(nowait=True).get(pk=policy_id).pk


def test_a_slow_cluster_does_not_hold_the_policys_row_while_withdrawing(cluster, monkeypatch):
    """The withdrawal held the row's lock over the API server's calls: while a slow cluster answered, every admin
    edit of the policy, the checker and the forecast run waited on it. Another connection takes the lock at
    once (nowait) while the deletes are out."""
    policy = _applied(cluster)
    seen = _during_the_removal(monkeypatch, lambda: _in_another_connection(lambda: _lock_at_once(policy.pk)))
    ScalingPolicy.objects.filter(pk=policy.pk).update(enabled=False)
    services.policy_withdraw(policy_id=policy.pk)
    assert seen and "error" not in seen[0], seen
    assert seen[0]["value"] == policy.pk
    policy.refresh_from_db()
    assert policy.apply_state == "not_configured" and cluster.autoscalers_of("medical-ai", NAME) == []


def test_enabled_again_while_withdrawing_applies_everything_once_the_deletes_are_done(cluster, monkeypatch):
    """What the lock was there for: a policy enabled again while its autoscalers are being removed is not applied
    beside the deletes (they would remove what the apply put there, the record saying applied). The withdrawal
    in flight holds any apply off; its outcome makes the policy PENDING, and the checker applies it all again."""
    policy = _applied(cluster)

    def enable_and_check():
        edited = ScalingPolicy.objects.select_related("service").get(pk=policy.pk)
        edited.enabled = True
        edited.save()  # as an admin edit does: the refresh runs on save
        sent = services.policies_reconcile()  # an apply sent now would run eagerly, beside the deletes
        return ScalingPolicy.objects.get(pk=policy.pk).apply_state, sent

    seen = _during_the_removal(monkeypatch, lambda: _in_another_connection(enable_and_check))
    policy.enabled = False
    policy.save()
    services.policies_reconcile()
    assert seen and "error" not in seen[0], seen
    assert seen[0]["value"] == ("applying", [])  # in flight: nothing sent beside it
    policy.refresh_from_db()
    assert policy.enabled and policy.apply_state == "pending" and policy.applied_hash == ""
    assert cluster.autoscalers_of("medical-ai", NAME) == []

    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "active", policy.apply_error
    assert cluster.autoscalers_of("medical-ai", NAME) == [NAME]


def test_a_withdrawal_in_flight_is_not_sent_twice(cluster, monkeypatch):
    policy = _applied(cluster)
    nested = _during_the_removal(monkeypatch, lambda: services.policy_withdraw(policy_id=policy.pk).apply_state)
    ScalingPolicy.objects.filter(pk=policy.pk).update(enabled=False)
    services.policy_withdraw(policy_id=policy.pk)
    assert nested == ["applying"]
    deletes = [r["path"] for r in cluster.requests if r["method"] == "DELETE"]
    assert len(deletes) == len(set(deletes)) == 2  # the HPA and the VPA, once each


def _timing_out(monkeypatch, kind: str) -> None:
    """The real apply of `kind` reaches the API server, which applies it; its answer does not come back in
    time (urllib3's read timeout, as the client raises it)."""
    real = kube.server_side_apply

    class LateAnswer:
        def __init__(self, api):
            self.api = api

        def call_api(self, *args, **kwargs):
            self.api.call_api(*args, **kwargs)
            raise urllib3.exceptions.ReadTimeoutError(None, "https://cluster", "Read timed out. (read timeout=10.0)")

    def applying(api, document, *, dry_run):
        if dry_run or document["kind"] != kind:
            return real(api, document, dry_run=dry_run)
        return real(LateAnswer(api), document, dry_run=dry_run)

    monkeypatch.setattr(kube, "server_side_apply", applying)


def test_an_autoscaler_whose_apply_timed_out_is_withdrawn_when_the_policy_is_disabled(cluster, monkeypatch):
    """The HPA's apply timed out after the API server had applied it: the policy kept only what had answered,
    and disabling it left the HPA scaling the service with nothing here saying so."""
    _timing_out(monkeypatch, "HorizontalPodAutoscaler")
    policy = _policy()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "failed", policy.apply_error
    assert "ReadTimeoutError" in policy.apply_error and "may have been applied" in policy.apply_error
    assert cluster.autoscalers_of("medical-ai", NAME) == [NAME]  # there all the same
    assert ("HorizontalPodAutoscaler", NAME) in {(ref["kind"], ref["name"]) for ref in policy.applied_objects}

    policy.enabled = False
    policy.save()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert cluster.autoscalers_of("medical-ai", NAME) == []
    assert policy.apply_state == "not_configured", policy.apply_error


def test_an_autoscaler_whose_apply_timed_out_is_withdrawn_when_the_policy_is_deleted(cluster, monkeypatch):
    _timing_out(monkeypatch, "HorizontalPodAutoscaler")
    policy = _policy()
    services.policies_reconcile()
    assert cluster.autoscalers_of("medical-ai", NAME) == [NAME]
    Service.objects.get(slug=NAME).delete()
    assert cluster.autoscalers_of("medical-ai", NAME) == []
    assert not ScalingPolicy.objects.filter(pk=policy.pk).exists()


def test_a_refused_apply_is_not_counted_as_applied(cluster):
    """An answer is an answer: a kind the API server refused (HTTP 403) is not kept (the timeout's rule only)."""
    cluster.fail_apply["HorizontalPodAutoscaler"] = 403
    policy = _policy()
    services.policies_reconcile()
    policy.refresh_from_db()
    assert policy.apply_state == "failed" and "HTTP 403" in policy.apply_error
    assert "HorizontalPodAutoscaler" not in {ref["kind"] for ref in policy.applied_objects}


def test_the_lock_probe_does_fail_on_a_row_locked_elsewhere():
    """The first test's probe is meaningful: another connection cannot take a row this one holds."""
    policy = _policy()
    with transaction.atomic():
        ScalingPolicy.objects.select_for_update().get(pk=policy.pk)
        outcome = _in_another_connection(lambda: _lock_at_once(policy.pk))
    assert isinstance(outcome.get("error"), DatabaseError), outcome
