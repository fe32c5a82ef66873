"""An alert is shown and sent as it fired: its kept snapshot (rule, severity, service), not its rule as it is now.

- A rule that fired on a hidden service and was then moved to a visible one showed the hidden service's name
  (the alert's snapshot) to Viewers and Operators: the alert was judged by the rule's current service. It is
  judged by the service it fired on, wherever it is shown (the alert list, admin's list, page and filter, the
  live feed).
- A rule renamed while firing sent "firing" under its old name and "resolved" under its new one, and neither
  carried the alert's id: a receiver correlating by name never closed the incident. Both are built from the
  snapshot and carry the alert's id.
- Alerts inserted by the last release's pods while an upgrade rolls out have an empty snapshot (the columns'
  database default): they read rule "" and severity "" for ever. The evaluation fills them from their rule.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.utils import timezone

from apps.accounts.roles import VIEWERS
from apps.metrics import selectors, services
from apps.metrics.models import Alert, AlertRule
from apps.services.selectors import visible_service_ids
from apps.services.services import service_create
from tests.metrics.support import alerts_evaluate_committed, host_sample

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("resolution_sent_at_once")]

BLANK = {"rule_name": "", "rule_severity": "", "rule_metric": "", "rule_operator": "", "rule_threshold": None,
         "service_name": "", "service_pk": None}  # fmt: skip


@pytest.fixture(autouse=True)
def _no_seeded_rules():
    AlertRule.objects.all().delete()


@pytest.fixture
def hidden_service():
    service = service_create(name="Hidden Oncology h2", slug="onco-h2", route_prefix="api/v1/onco-h2/")
    service.visible_to.add(Group.objects.create(name="Oncology AI h2"))
    return service


@pytest.fixture
def open_service():
    return service_create(name="Open Radiology h2", slug="radio-h2", route_prefix="api/v1/radio-h2/")


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user("viewer-h2", "v@example.org", "pw-viewer-long-1", is_staff=True)
    user.groups.add(Group.objects.get(name=VIEWERS))
    return user


def _shown_to(user, api, client) -> dict[str, str]:
    """Everything a restricted user reads of the alerts: the API, admin's list (and its filter), the live feed."""
    api.force_login(user)
    client.force_login(user)
    listed = api.get("/api/v1/metrics/alerts/")
    assert listed.status_code == 200, listed.content
    changelist = client.get("/admin/metrics/alert/")
    filtered = client.get("/admin/metrics/alert/?rule_severity=critical")
    assert changelist.status_code == 200 and filtered.status_code == 200
    feed = selectors.live_snapshot(visible_services=visible_service_ids(user))
    return {
        "api": str(listed.json()["results"]),
        "admin": changelist.content.decode(),
        "admin_filter": filtered.content.decode(),
        "feed": str(feed["alerts"]),
    }


def test_an_alert_fired_on_a_hidden_service_stays_hidden_when_its_rule_moves_to_a_visible_one(
    api, client, operator_user, viewer, hidden_service, open_service
):
    rule = AlertRule.objects.create(name="h2-moved", metric="p95_ms", threshold=800, severity="critical",
                                    service=hidden_service)  # fmt: skip
    alert = Alert.objects.create(rule=rule, value=1900, last_value=1900, message="p95 1900 ms")
    assert alert.service_pk == hidden_service.pk
    AlertRule.objects.filter(pk=rule.pk).update(service=open_service)  # moved (admin, the API) while firing
    for user in (operator_user, viewer):
        for where, text in _shown_to(user, api, client).items():
            assert "Hidden Oncology" not in text, where
            assert "h2-moved" not in text, where
        assert not selectors.alerts_visible(Alert.objects.all(), visible_service_ids(user)).exists()
        page = client.get(f"/admin/metrics/alert/{alert.pk}/change/")
        assert page.status_code in (302, 404)
    # the administrator, who sees every service, reads it as it fired
    [row] = selectors.alert_list()
    assert (row["rule"], row["service"]) == ("h2-moved", "Hidden Oncology h2")


def test_an_alert_fired_on_a_visible_service_stays_shown_when_its_rule_moves_to_a_hidden_one(
    api, client, viewer, hidden_service, open_service
):
    rule = AlertRule.objects.create(name="h2-open", metric="p95_ms", threshold=800, service=open_service)
    Alert.objects.create(rule=rule, value=1900, last_value=1900, message="p95 1900 ms")
    AlertRule.objects.filter(pk=rule.pk).update(service=hidden_service)
    api.force_login(viewer)
    [row] = api.get("/api/v1/metrics/alerts/").json()["results"]
    assert (row["rule"], row["service"]) == ("h2-open", "Open Radiology h2")


def test_an_alert_of_a_rule_of_no_service_is_judged_as_it_fired(viewer, hidden_service):
    """A host rule of no service is every staff user's; a p95 rule of no service sums every route, hidden ones
    included, so it is shown only to those who see all traffic: as for rules, whatever the rule is now."""
    host = AlertRule.objects.create(name="h2-host", metric="cpu_pct", threshold=80)
    summed = AlertRule.objects.create(name="h2-summed", metric="p95_ms", threshold=800)
    for rule in (host, summed):
        Alert.objects.create(rule=rule, value=97, last_value=97, message="m")
    AlertRule.objects.filter(pk=host.pk).update(service=hidden_service)
    shown = selectors.alert_list(visible_services=visible_service_ids(viewer))
    assert [row["rule"] for row in shown] == ["h2-host"]
    assert {row["rule"] for row in selectors.alert_list()} == {"h2-host", "h2-summed"}


def _firing_rule(url: str, name: str) -> AlertRule:
    rule = AlertRule.objects.create(name=name, metric="cpu_pct", threshold=80, for_seconds=0, window_minutes=1,
                                    webhook_url=url, email_to="oncall@example.org", severity="critical")  # fmt: skip
    host_sample(cpu=97.0, at=timezone.now())
    [fired] = alerts_evaluate_committed(now=timezone.now() + timedelta(seconds=1))
    assert fired.rule_id == rule.pk
    return rule


def test_a_rule_renamed_while_firing_resolves_under_the_name_it_fired_with(webhook_receiver):
    url, received = webhook_receiver
    rule = _firing_rule(url, "ren-old")
    AlertRule.objects.filter(pk=rule.pk).update(name="ren-new", severity="info", enabled=False)
    [resolved] = alerts_evaluate_committed(now=timezone.now() + timedelta(seconds=2))  # the disabled rule's
    sent = [(r["event"], r["rule"], r["severity"]) for r in received]
    assert sent == [("firing", "ren-old", "critical"), ("resolved", "ren-old", "critical")]
    assert {r["alert"] for r in received} == {resolved.pk}
    for field in ("metric", "threshold", "value", "message", "started_at", "resolved_at"):  # kept
        assert all(field in r for r in received), field
    assert [message.subject for message in mail.outbox] == ["[critical] firing: ren-old",
                                                            "[critical] resolved: ren-old"]  # fmt: skip


def test_a_rule_renamed_then_deleted_resolves_under_the_name_it_fired_with(
    webhook_receiver, django_capture_on_commit_callbacks
):
    url, received = webhook_receiver
    rule = _firing_rule(url, "ren-old")
    rule.name = "ren-new"
    rule.save(update_fields=["name"])
    with django_capture_on_commit_callbacks(execute=True):
        rule.delete()
    [alert] = Alert.objects.all()
    assert [(r["event"], r["rule"], r["alert"]) for r in received] == [("firing", "ren-old", alert.pk),
                                                                       ("resolved", "ren-old", alert.pk)]  # fmt: skip


def test_alerts_inserted_without_their_snapshot_are_filled_by_the_evaluation(api, viewer, hidden_service):
    """As the last release's pods insert them during an upgrade: every snapshot column at its default."""
    host = AlertRule.objects.create(name="h2-cpu", metric="cpu_pct", threshold=80, severity="critical")
    onco = AlertRule.objects.create(name="h2-onco", metric="p95_ms", threshold=800, service=hidden_service)
    firing = Alert.objects.create(rule=host, value=97, last_value=97, message="CPU 97")
    done = Alert.objects.create(rule=onco, value=1900, last_value=1900, message="p95", state="resolved",
                                resolved_at=timezone.now())  # fmt: skip
    Alert.objects.filter(pk__in=[firing.pk, done.pk]).update(**BLANK)

    # before the evaluation: judged by their rule, never shown to whoever does not see its service
    api.force_login(viewer)
    assert [r["id"] for r in api.get("/api/v1/metrics/alerts/").json()["results"]] == [firing.pk]
    notice = services._alert_notice(Alert.objects.get(pk=firing.pk), "resolved")
    assert (notice["payload"]["rule"], notice["payload"]["severity"], notice["subject"]) == (
        "h2-cpu", "critical", "[critical] resolved: h2-cpu")  # fmt: skip

    alerts_evaluate_committed(now=timezone.now())
    rows = {row["id"]: row for row in selectors.alert_list()}
    assert (rows[firing.pk]["rule"], rows[firing.pk]["severity"], rows[firing.pk]["metric"]) == (
        "h2-cpu", "critical", "cpu_pct")  # fmt: skip
    assert (rows[done.pk]["rule"], rows[done.pk]["service"]) == ("h2-onco", "Hidden Oncology h2")
    assert [a["rule"] for a in selectors.live_snapshot()["alerts"]] == ["h2-cpu"]
    assert [r["id"] for r in api.get("/api/v1/metrics/alerts/").json()["results"]] == [firing.pk]
    assert not Alert.objects.filter(rule_name="").exists()
