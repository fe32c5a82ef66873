"""The dashboard page alone may connect to the live feed's origin; no page may connect to any other host."""

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def _connect_src(response) -> list[str]:
    for directive in response["Content-Security-Policy"].split(";"):
        name, *sources = directive.split()
        if name == "connect-src":
            return sources
    raise AssertionError(f"no connect-src in {response['Content-Security-Policy']!r}")


@pytest.fixture
def dashboard(client, admin_user, tmp_path):
    (tmp_path / "index.html").write_text("<html><head></head><body></body></html>")
    client.force_login(admin_user)
    with override_settings(DASHBOARD_BUILD_DIR=tmp_path, ALLOWED_HOSTS=["cp.example.org", "testserver"]):
        yield client


def test_pages_other_than_the_dashboard_connect_to_their_own_origin_only(client):
    assert _connect_src(client.get("/healthz")) == ["'self'"]
    assert _connect_src(client.get("/admin/login/")) == ["'self'"]


@override_settings(LIVE_PORT=8001, LIVE_WEBSOCKET_URL="")
def test_the_dashboard_may_connect_to_the_live_process_on_its_port(dashboard):
    response = dashboard.get("/dashboard/", HTTP_HOST="cp.example.org:8000")
    assert response.status_code == 200
    assert _connect_src(response) == ["'self'", "ws://cp.example.org:8001"]


@override_settings(LIVE_PORT=None, LIVE_WEBSOCKET_URL="", SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_the_dashboard_behind_an_ingress_connects_to_its_own_origin(dashboard):
    response = dashboard.get("/dashboard/", HTTP_HOST="cp.example.org", HTTP_X_FORWARDED_PROTO="https")
    assert _connect_src(response) == ["'self'", "wss://cp.example.org"]


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("wss://live.example.org/ws/metrics/", "wss://live.example.org"),
        ("https://live.example.org:8443/ws/metrics/", "wss://live.example.org:8443"),
        ("/ws/metrics/", "ws://testserver"),
    ],
)
def test_the_dashboard_may_connect_to_a_configured_live_url(dashboard, url, origin):
    with override_settings(LIVE_WEBSOCKET_URL=url, LIVE_PORT=8001):
        response = dashboard.get("/dashboard/")
    assert _connect_src(response) == ["'self'", origin]
