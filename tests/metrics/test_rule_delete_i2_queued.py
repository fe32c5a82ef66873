"""A deleted firing rule's "resolved" is queued, never sent from the delete: a bulk delete against a webhook that
never answered took its timeout once per rule (6 rules, 30 s; 100, minutes), and against an SMTP server that never
answered it hung for good (no EMAIL_TIMEOUT); a failed "resolved" was only logged, never tried again. The task,
built before the rows went, retries the channels that failed until the receiver answers."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.core.mail import get_connection
from django.utils import timezone

from apps.metrics import tasks
from apps.metrics.models import Alert, AlertRule
from tests.metrics.support import alerts_evaluate_committed, host_sample

pytestmark = pytest.mark.django_db

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


class Receiver:
    """A real TCP listener on loopback, for the webhook and the SMTP server alike. `silent`: it accepts and never
    answers (a hung receiver); else it answers each HTTP POST 204 and keeps its JSON body. Counts what it accepts."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.silent, self.accepted, self.bodies = False, 0, []
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            self.held.append(conn)
            if not self.silent:
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket):
        import json

        conn.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            while len(body) < length:
                body += conn.recv(65536)
            self.bodies.append(json.loads(body))
            conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:  # an SMTP client that never speaks first: it gives up on its own timeout
            pass

    def close(self):
        self.stop.set()
        self.thread.join()
        for conn in self.held:
            conn.close()
        self.listener.close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def queued(monkeypatch):
    """The tasks sent to the broker, as (kwargs, options): none reaches RabbitMQ."""
    sent: list[tuple[dict, dict]] = []
    monkeypatch.setattr(tasks.deleted_alert_resolution_send, "apply_async",
                        lambda args=None, kwargs=None, **options: sent.append((kwargs, options)))  # fmt: skip
    return sent


@pytest.fixture(autouse=True)
def _no_seeded_rules():
    AlertRule.objects.all().delete()


@pytest.fixture
def root_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.org", "pw-root-123"))
    return client


def _firing_rules(receiver: Receiver, names: list[str]) -> list[AlertRule]:
    """Rules firing, their "firing" delivered to `receiver` (answering) and to the mailbox."""
    url = f"http://127.0.0.1:{receiver.port}/hooks/alerts/s3cr3t"
    rules = []
    for name in names:
        fields = {"metric": "cpu_pct", "threshold": 80, "for_seconds": 0, "window_minutes": 1}
        rules.append(AlertRule.objects.create(name=name, webhook_url=url, email_to="oncall@example.org", **fields))
        host_sample(cpu=97.0, at=timezone.now())
        [fired] = alerts_evaluate_committed(now=timezone.now() + timedelta(seconds=1))
        assert fired.rule_id == rules[-1].pk and fired.state == Alert.State.FIRING
    assert [b["event"] for b in receiver.bodies] == ["firing"] * len(names)
    return rules


def _hung(receiver: Receiver, settings) -> None:
    """The webhook and the SMTP server (both `receiver`) accept and never answer from now on."""
    receiver.silent, receiver.accepted = True, 0
    # short, so that the code before the fix (which called the receivers from the delete) fails fast, not hangs
    settings.ALERT_WEBHOOK_TIMEOUT_SECONDS, settings.EMAIL_TIMEOUT = 0.5, 0.5
    settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT = SMTP_BACKEND, "127.0.0.1", receiver.port


def test_a_bulk_delete_against_receivers_that_never_answer_queues_and_calls_none(
    root_client, receiver, queued, settings, django_capture_on_commit_callbacks
):
    names = ["CPU a", "CPU b", "CPU c"]
    rules = _firing_rules(receiver, names)
    _hung(receiver, settings)
    with django_capture_on_commit_callbacks(execute=True):
        form = {"action": "delete_selected", "post": "yes", "_selected_action": [r.pk for r in rules]}
        response = root_client.post("/admin/metrics/alertrule/", form)
    assert response.status_code == 302 and not AlertRule.objects.exists()
    assert receiver.accepted == 0  # neither the webhook nor the SMTP server was called from the delete
    assert sorted(kwargs["notice"]["payload"]["rule"] for kwargs, _ in queued) == names
    for kwargs, options in queued:
        assert kwargs["channels"] == ["webhook", "email"]
        assert kwargs["notice"]["payload"]["event"] == "resolved"
        assert "rule deleted" in kwargs["notice"]["payload"]["message"]
        assert "s3cr3t" not in options["kwargsrepr"]  # the broker's and the worker's view: the webhook's origin only


def test_the_queued_task_retries_what_failed_and_delivers_once_the_receiver_answers(
    receiver, queued, settings, django_capture_on_commit_callbacks
):
    [rule] = _firing_rules(receiver, ["CPU"])
    _hung(receiver, settings)
    with django_capture_on_commit_callbacks(execute=True):
        rule.delete()
    [(kwargs, _)] = queued
    task = tasks.deleted_alert_resolution_send

    # As a worker runs it (not called directly): both channels fail, the retry is queued with both, backed off.
    task.push_request(id="i2-first", retries=0, called_directly=False, is_eager=False)
    try:
        with pytest.raises(Retry):
            task.run(**kwargs)
    finally:
        task.pop_request()
    assert receiver.accepted == 2  # one webhook, one SMTP connection
    retry_kwargs, retry_options = queued[1]
    assert retry_kwargs["channels"] == ["webhook", "email"] and retry_options["countdown"] == 30

    # The webhook answers now, the SMTP server still not: the retry after it carries the e-mail alone.
    receiver.silent = False
    task.push_request(id="i2-second", retries=1, called_directly=False, is_eager=False)
    try:
        with pytest.raises(Retry):
            task.run(**retry_kwargs)
    finally:
        task.pop_request()
    [resolved] = [b for b in receiver.bodies if b["event"] == "resolved"]
    assert resolved["rule"] == "CPU" and resolved["resolved_at"] is not None and "rule deleted" in resolved["message"]
    last_kwargs, last_options = queued[2]
    assert last_kwargs["channels"] == ["email"] and last_options["countdown"] == 60

    # The mail server answers: delivered, the webhook not called again, nothing more queued.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox.clear()
    task(**last_kwargs)
    assert [m.subject for m in mail.outbox] == ["[warning] resolved: CPU"]
    assert len([b for b in receiver.bodies if b["event"] == "resolved"]) == 1 and len(queued) == 3


def test_a_broker_that_refuses_the_task_fails_no_delete(
    queued, receiver, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    [rule] = _firing_rules(receiver, ["CPU"])

    def broker_away(*args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(tasks.deleted_alert_resolution_send, "apply_async", broker_away)
    with django_capture_on_commit_callbacks(execute=True):
        rule.delete()
    assert not AlertRule.objects.exists()
    assert f"tell webhook http://127.0.0.1:{receiver.port}/..., email oncall@example.org by hand" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_smtp_has_a_timeout(settings):
    """No EMAIL_TIMEOUT: Django's SMTP backend waited on a mail server that never answered for good."""
    assert 0 < settings.EMAIL_TIMEOUT <= 60
    assert get_connection(SMTP_BACKEND).timeout == settings.EMAIL_TIMEOUT
