"""A webhook's path is its secret (a chat webhook's: whoever has it posts into the channel). Viewers, who change
nothing, read it whole on the rule's admin page and in each alert's deliveries; they now see its origin only,
as the logs do. Operators and Administrators, who edit the rules, still see it whole."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.accounts.roles import OPERATORS, VIEWERS
from apps.metrics.models import Alert, AlertNotification, AlertRule

pytestmark = pytest.mark.django_db

SECRET = "T00000000/B00000000/XXXXsecretXXXX"
URL = f"https://hooks.example.org/services/{SECRET}"


@pytest.fixture
def rule_with_a_delivery():
    rule = AlertRule.objects.create(name="CPU i", metric="cpu_pct", threshold=80, webhook_url=URL,
                                    email_to="oncall@example.org")  # fmt: skip
    alert = Alert.objects.create(rule=rule, value=97.0, last_value=97.0, message="CPU is 97.0, above 80")
    AlertNotification.objects.create(alert=alert, event="firing", channel="webhook", target=URL, delivered=True,
                                     detail="HTTP 204")  # fmt: skip
    AlertNotification.objects.create(alert=alert, event="firing", channel="email", target="oncall@example.org",
                                     delivered=True, detail="sent")  # fmt: skip
    return rule, alert


def _member(django_user_model, role: str):
    user = django_user_model.objects.create_user(role.lower(), f"{role.lower()}@example.org", "pw-i-123456",
                                                 is_staff=True)  # fmt: skip
    user.groups.add(Group.objects.get(name=role))
    return user


def _pages(client, rule, alert) -> list[str]:
    pages = []
    for path in (f"/admin/metrics/alertrule/{rule.pk}/change/", f"/admin/metrics/alert/{alert.pk}/change/"):
        response = client.get(path)
        assert response.status_code == 200, path
        pages.append(response.content.decode())
    return pages


def test_a_viewer_sees_the_webhooks_origin_not_its_path(client, django_user_model, rule_with_a_delivery):
    rule, alert = rule_with_a_delivery
    client.force_login(_member(django_user_model, VIEWERS))
    rule_page, alert_page = _pages(client, rule, alert)
    for page in (rule_page, alert_page):
        assert SECRET not in page and "hooks.example.org/services" not in page
        assert "https://hooks.example.org/..." in page
    assert "oncall@example.org" in alert_page  # the e-mail delivery's target is no secret


def test_an_operator_who_edits_the_rule_sees_it_whole(client, django_user_model, rule_with_a_delivery):
    rule, alert = rule_with_a_delivery
    client.force_login(_member(django_user_model, OPERATORS))
    rule_page, alert_page = _pages(client, rule, alert)
    assert f'value="{URL}"' in rule_page  # an editable field, its value kept on save
    assert SECRET in alert_page


def test_an_operator_saving_the_rule_keeps_its_webhook(client, django_user_model, rule_with_a_delivery):
    rule, _ = rule_with_a_delivery
    client.force_login(_member(django_user_model, OPERATORS))
    form = {"name": rule.name, "enabled": "on", "metric": "cpu_pct", "operator": "gt", "threshold": 85,
            "window_minutes": 5, "for_seconds": 120, "hysteresis_pct": 10, "min_requests": 20,
            "severity": "warning", "webhook_url": URL, "email_to": rule.email_to}  # fmt: skip
    response = client.post(f"/admin/metrics/alertrule/{rule.pk}/change/", form)
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.threshold, rule.webhook_url) == (85, URL)
