"""A rule deleted while its alert fires (admin's delete page, its list's bulk delete, its service deleted) sends
"resolved" to the webhook and the e-mail: the delete took the alert with it in silence, and the receiver's
incident stayed open for good."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.metrics.models import Alert, AlertNotification, AlertRule
from apps.services.models import Service
from tests.metrics.support import alerts_evaluate_committed, host_sample

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("resolution_sent_at_once")]


@pytest.fixture(autouse=True)
def _no_seeded_rules():
    AlertRule.objects.all().delete()


@pytest.fixture
def root_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123"))
    return client


def _firing_rule(url: str, **fields) -> AlertRule:
    rule = AlertRule.objects.create(name=fields.pop("name", "CPU"), metric="cpu_pct", threshold=80, for_seconds=0,
                                    window_minutes=1, webhook_url=url, email_to="oncall@example.org",
                                    **fields)  # fmt: skip
    host_sample(cpu=97.0, at=timezone.now())
    [fired] = alerts_evaluate_committed(now=timezone.now() + timedelta(seconds=1))
    assert fired.rule_id == rule.pk and fired.state == Alert.State.FIRING
    return rule


def test_deleting_a_firing_rule_in_admin_sends_resolved(
    root_client, webhook_receiver, django_capture_on_commit_callbacks
):
    url, received = webhook_receiver
    rule = _firing_rule(url)
    with django_capture_on_commit_callbacks(execute=True):
        response = root_client.post(f"/admin/metrics/alertrule/{rule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not AlertRule.objects.filter(pk=rule.pk).exists()
    assert [r["event"] for r in received] == ["firing", "resolved"]
    assert received[1]["rule"] == "CPU" and received[1]["resolved_at"] is not None
    assert "rule deleted" in received[1]["message"]
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["[warning] firing", "[warning] resolved"]
    # the alert is kept (rule-less), its "resolved" deliveries recorded on it (test_alert_history_i_kept.py)
    assert AlertNotification.objects.filter(event="resolved", delivered=True, alert__rule=None).count() == 2


def test_the_lists_bulk_delete_resolves_each_firing_rule(
    root_client, webhook_receiver, django_capture_on_commit_callbacks
):
    url, received = webhook_receiver
    rules = [_firing_rule(url, name="CPU"), _firing_rule(url, name="CPU again")]
    with django_capture_on_commit_callbacks(execute=True):
        form = {"action": "delete_selected", "post": "yes", "_selected_action": [r.pk for r in rules]}
        response = root_client.post("/admin/metrics/alertrule/", form)
    assert response.status_code == 302 and not AlertRule.objects.exists()
    resolved = sorted(r["rule"] for r in received if r["event"] == "resolved")
    assert resolved == ["CPU", "CPU again"]


def test_a_rule_deleted_with_its_service_sends_resolved(webhook_receiver, django_capture_on_commit_callbacks):
    url, received = webhook_receiver
    service = Service.objects.create(name="Triage", slug="triage-i", route_prefix="triage-i")
    _firing_rule(url, service=service)
    with django_capture_on_commit_callbacks(execute=True):
        service.delete()
    assert [r["event"] for r in received] == ["firing", "resolved"]


def test_a_rule_whose_alert_was_resolved_already_sends_nothing_more(
    webhook_receiver, django_capture_on_commit_callbacks
):
    url, received = webhook_receiver
    rule = _firing_rule(url)
    rule.enabled = False
    rule.save()
    alerts_evaluate_committed(now=timezone.now() + timedelta(seconds=2))  # resolved: rule disabled
    assert [r["event"] for r in received] == ["firing", "resolved"]
    with django_capture_on_commit_callbacks(execute=True):
        rule.delete()
    assert len(received) == 2
