"""Alert history outlives its rule: deleting a rule (or its service) deleted every alert it raised and their
deliveries, and its "resolved" was only logged, so "what fired last Tuesday at 03:00, who was told, did it
arrive" had no answer. The alerts stay, linked to no rule, with what the rule was when they fired (its name,
metric, threshold, service), the deleted rule's "resolved" is recorded as their delivery, and every reader
(the alert list, admin, the live feed, the evaluation) takes an alert without its rule, which stays hidden from
whoever did not see its service."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.accounts.roles import VIEWERS
from apps.metrics import selectors
from apps.metrics.models import Alert, AlertNotification, AlertRule
from apps.services.selectors import visible_service_ids
from apps.services.services import service_create
from tests.metrics.support import alerts_evaluate_committed, host_sample

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("resolution_sent_at_once")]

migration = importlib.import_module("apps.metrics.migrations.0011_alert_kept_with_rule_snapshot")


@pytest.fixture(autouse=True)
def _no_seeded_rules():
    AlertRule.objects.all().delete()


@pytest.fixture
def hidden_service():
    service = service_create(name="Oncology triage", slug="onco-i", route_prefix="api/v1/onco-i/")
    service.visible_to.add(Group.objects.create(name="Oncology AI i"))
    return service


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user("viewer-i", "v@example.org", "pw-viewer-long-1", is_staff=True)
    user.groups.add(Group.objects.get(name=VIEWERS))
    return user


def _firing_rule(url: str, **fields) -> AlertRule:
    fields.setdefault("email_to", "oncall@example.org")
    rule = AlertRule.objects.create(name=fields.pop("name", "CPU"), metric="cpu_pct", threshold=80, for_seconds=0,
                                    window_minutes=1, webhook_url=url, **fields)  # fmt: skip
    host_sample(cpu=97.0, at=timezone.now())
    [fired] = alerts_evaluate_committed(now=timezone.now() + timedelta(seconds=1))
    assert fired.rule_id == rule.pk and fired.state == Alert.State.FIRING
    return rule


def test_a_deleted_firing_rule_keeps_its_alert_and_records_its_resolved_deliveries(
    admin_client, webhook_receiver, django_capture_on_commit_callbacks
):
    url, received = webhook_receiver
    rule = _firing_rule(url, name="Host CPU", severity="critical")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"/admin/metrics/alertrule/{rule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not AlertRule.objects.exists()
    assert [r["event"] for r in received] == ["firing", "resolved"]
    [alert] = Alert.objects.all()
    assert alert.rule_id is None and alert.state == Alert.State.RESOLVED and alert.resolved_at is not None
    assert "rule deleted" in alert.message
    snapshot = (alert.rule_name, alert.rule_severity, alert.rule_metric, alert.rule_operator, alert.rule_threshold)
    assert snapshot == ("Host CPU", "critical", "cpu_pct", "gt", 80.0)
    deliveries = sorted(alert.notifications.values_list("event", "channel", "delivered"))
    assert deliveries == [("firing", "email", True), ("firing", "webhook", True),
                          ("resolved", "email", True), ("resolved", "webhook", True)]  # fmt: skip
    # the alert's admin page and list read it without its rule
    assert admin_client.get(f"/admin/metrics/alert/{alert.pk}/change/").status_code == 200
    listed = admin_client.get("/admin/metrics/alert/")
    assert listed.status_code == 200 and "Host CPU" in listed.content.decode()
    assert str(alert) == "Host CPU (resolved)"


def test_a_failed_resolved_is_recorded_on_the_kept_alert_each_try(
    non_http_receiver, django_capture_on_commit_callbacks, monkeypatch
):
    from apps.metrics import services, tasks

    queued = []
    monkeypatch.setattr(tasks.deleted_alert_resolution_send, "apply_async",
                        lambda args=None, kwargs=None, **options: queued.append(kwargs))  # fmt: skip
    rule = _firing_rule(non_http_receiver, email_to="")
    with django_capture_on_commit_callbacks(execute=True):
        rule.delete()
    [kwargs] = queued
    for last_try in (False, True):  # the task's first try and its last
        assert services.deleted_alert_resolution_send(**kwargs, last_try=last_try) == ["webhook"]
    [alert] = Alert.objects.all()
    resolved = list(alert.notifications.filter(event="resolved").values_list("channel", "delivered"))
    assert resolved == [("webhook", False), ("webhook", False)]
    assert AlertNotification.objects.filter(alert=alert, event="firing", delivered=False).count() == 1


def test_a_service_deleted_keeps_its_rules_alerts_hidden_from_who_did_not_see_it(
    api, admin_client, operator_user, viewer, hidden_service, django_capture_on_commit_callbacks
):
    rule = AlertRule.objects.create(name="Onco p95", metric="p95_ms", threshold=800, service=hidden_service)
    Alert.objects.create(rule=rule, state="resolved", value=1900, last_value=1900, message="p95 1900 ms",
                         resolved_at=timezone.now())  # fmt: skip
    seen = AlertRule.objects.create(name="Host CPU", metric="cpu_pct", threshold=80)
    Alert.objects.create(rule=seen, value=97, last_value=97, message="CPU 97")
    with django_capture_on_commit_callbacks(execute=True):
        hidden_service.delete()  # the model's delete: the API and admin refuse a service with rules
    kept = Alert.objects.get(rule_name="Onco p95")
    assert kept.rule_id is None and kept.service_name == "Oncology triage" and kept.service_pk is not None
    assert (kept.rule_metric, kept.rule_threshold) == ("p95_ms", 800.0)

    response = admin_client.get("/api/v1/metrics/alerts/")
    assert response.status_code == 200, response.content
    row = next(r for r in response.json()["results"] if r["rule"] == "Onco p95")
    assert (row["rule_id"], row["service"], row["metric"], row["threshold"]) == (None, "Oncology triage",
                                                                                "p95_ms", 800.0)  # fmt: skip
    for user in (operator_user, viewer):
        api.force_login(user)
        listed = api.get("/api/v1/metrics/alerts/")
        assert listed.status_code == 200
        assert {r["rule"] for r in listed.json()["results"]} == {"Host CPU"}
        assert set(selectors.alerts_visible(Alert.objects.all(), visible_service_ids(user))) == {
            Alert.objects.get(rule_name="Host CPU")
        }
        admin_client.force_login(user)
        page = admin_client.get("/admin/metrics/alert/")
        assert page.status_code == 200 and "Onco p95" not in page.content.decode()
        assert admin_client.get(f"/admin/metrics/alert/{kept.pk}/change/").status_code in (302, 404)


def test_an_edited_rule_leaves_its_alerts_as_they_fired(webhook_receiver):
    url, _ = webhook_receiver
    rule = _firing_rule(url)
    AlertRule.objects.filter(pk=rule.pk).update(name="CPU renamed", threshold=90)
    [alert] = selectors.alert_list()
    assert (alert["rule"], alert["threshold"], alert["rule_id"]) == ("CPU", 80.0, rule.pk)


def test_a_firing_alert_left_without_its_rule_is_resolved_and_read_by_the_live_feed(operator_user):
    rule = AlertRule.objects.create(name="Host CPU", metric="cpu_pct", threshold=80)
    alert = Alert.objects.create(rule=rule, value=97, last_value=97, message="CPU 97")
    Alert.objects.filter(pk=alert.pk).update(rule=None)  # as a delete that sent no pre_delete (raw SQL) leaves it
    feed = selectors.live_snapshot(visible_services=visible_service_ids(operator_user))
    assert [a["rule"] for a in feed["alerts"]] == ["Host CPU"]
    changed = alerts_evaluate_committed(now=timezone.now())
    assert [a.pk for a in changed] == [alert.pk]
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED and "rule deleted" in alert.message


def test_the_data_migration_fills_the_snapshot_and_its_reverse_refuses_rule_less_alerts(hidden_service):
    rule = AlertRule.objects.create(name="Onco p95", metric="p95_ms", operator="gt", threshold=800,
                                    severity="critical", service=hidden_service)  # fmt: skip
    alert = Alert.objects.create(rule=rule, value=1, last_value=1, message="m", state="resolved")
    blank = {"rule_name": "", "rule_severity": "", "rule_metric": "", "rule_operator": "", "rule_threshold": None,
             "service_name": "", "service_pk": None}  # fmt: skip
    Alert.objects.filter(pk=alert.pk).update(**blank)  # as a row stored before the migration
    migration.snapshot_fill(django_apps, None)
    alert.refresh_from_db()
    assert (alert.rule_name, alert.rule_severity, alert.rule_metric, alert.rule_operator, alert.rule_threshold,
            alert.service_name, alert.service_pk) == ("Onco p95", "critical", "p95_ms", "gt", 800.0,
                                                      "Oncology triage", hidden_service.pk)  # fmt: skip
    migration.refuse_alerts_without_rule(django_apps, None)  # every alert has its rule: it may go back
    rule.delete()
    with pytest.raises(RuntimeError, match="1 alerts have lost their rule"):
        migration.refuse_alerts_without_rule(django_apps, None)
