"""A staff session left open on a ward workstation ends after SESSION_IDLE_SECONDS without a request."""

import time

import pytest
from django.test import override_settings

from apps.core.middleware import LAST_SEEN_KEY

pytestmark = pytest.mark.django_db


def _age_the_session(client, seconds: float) -> None:
    session = client.session
    session[LAST_SEEN_KEY] = time.time() - seconds
    session.save()


@override_settings(SESSION_IDLE_SECONDS=900)
def test_an_idle_session_is_signed_out_and_an_active_one_is_not(client, admin_user):
    client.force_login(admin_user)  # stamps it
    assert client.get("/admin/").status_code == 200
    _age_the_session(client, 600)
    assert client.get("/admin/").status_code == 200  # ten minutes idle: still signed in
    assert client.get("/api/v1/services/").status_code == 200  # the dashboard's reads keep it alive too
    _age_the_session(client, 901)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/api/v1/services/").status_code in (401, 403)  # signed out for good, not for one request


@override_settings(SESSION_IDLE_SECONDS=0)
def test_zero_turns_the_idle_logoff_off(client, admin_user):
    client.force_login(admin_user)
    client.get("/admin/")
    _age_the_session(client, 10 * 3600)
    assert client.get("/admin/").status_code == 200


def test_a_stale_cookie_of_nobody_signed_in_makes_no_session(client):
    from django.contrib.sessions.models import Session

    client.cookies["sessionid"] = "no-such-session-0123456789abcdef"
    client.get("/admin/login/")
    assert not Session.objects.exists()


@override_settings(SESSION_IDLE_SECONDS=900)
def test_requests_in_the_first_minute_after_sign_in_write_nothing(client, admin_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(admin_user)
    with CaptureQueriesContext(connection) as queries:
        client.get("/api/v1/services/")
    assert not [q for q in queries if "UPDATE" in q["sql"] and "django_session" in q["sql"]]
