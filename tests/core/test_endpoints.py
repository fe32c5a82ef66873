"""OpenAPI schema and docs, the admin login and the dashboard shell."""

import json

import pytest
from django.conf import settings
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_openapi_schema_describes_the_api(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/services/" in schema["paths"]
    assert "/api/v1/whoami/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


def test_an_unknown_schema_version_is_ignored_not_echoed_into_a_header(client):
    response = client.get("/api/schema/", {"format": "json", "version": "a\r\nX-Injected: 1"})
    assert response.status_code == 200
    assert "X-Injected" not in response["Content-Disposition"] and "X-Injected" not in response


def test_api_docs_load_offline(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html


def test_admin_login_page(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "Medical AI performance control plane" in response.content.decode()


def test_dashboard_sends_anonymous_users_to_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@override_settings(LIVE_PORT=8001, SESSION_IDLE_SECONDS=900)
def test_dashboard_serves_the_built_app_with_its_config(client, admin_user):
    assert (settings.DASHBOARD_BUILD_DIR / "index.html").is_file(), "build the frontend first (make test does)"
    client.force_login(admin_user)
    for path in ("/dashboard/", "/dashboard/services/clinical-api"):
        response = client.get(path)
        assert response.status_code == 200
        html = response.content.decode()
        assert '<script id="controlplane-config" type="application/json">' in html
        assert '"livePort": 8001' in html
        assert "/static/dashboard/assets/" in html
        config = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
        assert set(config["snapshot"]) >= {"overall", "services", "alerts"}  # the first frame has numbers
        assert config["sessionIdleSeconds"] == 900  # an unattended tab drops patient data when the logoff is due


def test_the_dashboards_config_is_strict_json_whatever_the_snapshot_holds(client, admin_user, monkeypatch):
    """A NaN in the embedded snapshot (a rate over an empty window) was written bare: the browser's JSON.parse
    refused the whole config, and the dashboard lost its websocket's address with it."""
    from apps.metrics import selectors

    monkeypatch.setattr(selectors, "live_snapshot", lambda **kwargs: {"overall": {"p95_ms": float("nan")}})
    client.force_login(admin_user)
    html = client.get("/dashboard/").content.decode()

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")  # as JSON.parse does

    config = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0], parse_constant=refuse)
    assert config["snapshot"] == {"overall": {"p95_ms": None}} and config["adminUrl"] == "/admin/"


def test_dashboard_embeds_no_live_snapshot_for_staff_without_the_metrics_permission(client, django_user_model):
    user = django_user_model.objects.create_user("no-role", "n@example.org", "pw-no-role-1", is_staff=True)
    client.force_login(user)
    html = client.get("/dashboard/").content.decode()
    config = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert config["snapshot"] is None  # the live socket refuses them too (4403)


def test_dashboard_explains_a_missing_build(client, admin_user, tmp_path):
    client.force_login(admin_user)
    with override_settings(DASHBOARD_BUILD_DIR=tmp_path):
        response = client.get("/dashboard/")
    assert response.status_code == 503
    assert "make frontend" in response.content.decode()
