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


def test_a_webhook_s_redirect_is_not_followed():
    """A receiver on an allowed address answering 302 to another place (the metadata service, here a second
    loopback server standing in for it) got the product to follow: the 3xx is now a failed delivery."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    reached: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self):
            reached.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    elsewhere = HTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{elsewhere.server_port}/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    redirecting = HTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (elsewhere, redirecting):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        AlertRule.objects.create(name="CPU", metric="cpu_pct", threshold=1, for_seconds=0,
                                 webhook_url=f"http://127.0.0.1:{redirecting.server_port}/hook")  # fmt: skip
        host_sample(cpu=90.0)
        [alert] = alerts_evaluate_committed()
        [notification] = alert.notifications.all()
    finally:
        for server in (elsewhere, redirecting):
            server.shutdown()
    assert not notification.delivered
    assert "302" in notification.detail
    assert reached == []
