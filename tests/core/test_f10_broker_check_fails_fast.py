"""The broker's readiness check slept through kombu's retry interval (2 s) before its second try: with the
port refusing connections /readyz gave up on it at its 2 s deadline and said "no answer within 2s" rather than
"connection refused". It now tries again at once and says why."""

from __future__ import annotations

import socket

import pytest

from apps.core import selectors as core_selectors
from controlplane.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broker_refusing(monkeypatch):
    monkeypatch.setattr(app.conf, "broker_write_url", f"amqp://guest:guest@127.0.0.1:{_closed_port()}//")
    core_selectors.shared_readiness.forget()
    yield
    core_selectors.shared_readiness.forget()


def test_a_refused_broker_is_not_waited_on(broker_refusing, monkeypatch):
    slept = []
    monkeypatch.setattr("kombu.utils.functional.sleep", slept.append)
    result = core_selectors._timed("broker", core_selectors._probe_broker)
    assert result.status == core_selectors.ERROR
    assert "connection refused" in result.detail.lower(), result.detail
    assert not slept, slept  # was [1.0, 1.0, 0]: kombu's interval_start between the two tries


def test_readyz_says_the_broker_refused(broker_refusing):
    _, checks = core_selectors.readiness_report()
    broker = checks["broker"]
    assert broker["status"] == core_selectors.ERROR
    assert "connection refused" in broker["detail"].lower(), broker  # was "no answer within 2s"
