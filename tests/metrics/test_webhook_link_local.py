"""An alert's webhook is never sent to a link-local address (169.254.169.254 is the cloud metadata service): a
field error on the rule, and a rule stored before that refusal is not posted to, its delivery recorded as failed
with the reason. Mirrors the services' base URL check (apps/core/link_local.py)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.core.link_local import LINK_LOCAL_MESSAGE
from apps.metrics.models import AlertRule
from tests.metrics.support import alerts_evaluate_committed, host_sample

pytestmark = pytest.mark.django_db

METADATA = ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/hook", "http://[::ffff:169.254.169.254]/"]


@pytest.mark.parametrize("url", METADATA)
def test_a_link_local_webhook_is_a_field_error(url):
    rule = AlertRule(name="cpu", metric="cpu_pct", threshold=1, webhook_url=url)
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert set(refused.value.message_dict) == {"webhook_url"}


def test_loopback_and_private_webhooks_stay_allowed():
    for url in ["http://127.0.0.1:9000/hook", "http://10.2.3.4/hook", "https://pager.hospital.example/hook"]:
        AlertRule(name="cpu", metric="cpu_pct", threshold=1, webhook_url=url).full_clean()


def test_the_admin_form_refuses_it(admin_client):
    form = {"name": "metadata", "enabled": "on", "metric": "cpu_pct", "operator": "gt", "threshold": 1,
            "window_minutes": 5, "for_seconds": 0, "hysteresis_pct": 10, "min_requests": 20,
            "severity": "warning", "webhook_url": METADATA[0]}  # fmt: skip
    response = admin_client.post("/admin/metrics/alertrule/add/", form)
    assert response.status_code == 200
    assert "webhook_url" in response.context["adminform"].form.errors
    assert not AlertRule.objects.filter(name="metadata").exists()


def test_a_rule_stored_before_the_check_is_not_posted_to():
    AlertRule.objects.create(name="CPU", metric="cpu_pct", threshold=1, for_seconds=0, webhook_url=METADATA[0])
    host_sample(cpu=90.0)
    [alert] = alerts_evaluate_committed()
    [notification] = alert.notifications.all()
    assert not notification.delivered
    assert notification.detail == LINK_LOCAL_MESSAGE
