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


def _last_seen_age(client) -> float:
    return time.time() - client.session[LAST_SEEN_KEY]


@override_settings(SESSION_IDLE_SECONDS=900)
def test_an_unattended_dashboards_polls_do_not_keep_it_signed_in(client, admin_user):
    """The dashboard polls every 10-60 s whether anyone is there: each poll says how long its user has been
    idle, and counts as activity at that time only. Before, every poll was "active now", all shift long."""
    client.force_login(admin_user)
    _age_the_session(client, 600)
    for idle in (600, 700, 890):  # the tab's own polls, nobody at the keyboard since the last write
        assert client.get("/api/v1/services/", HTTP_X_USER_IDLE_SECONDS=str(idle)).status_code == 200
        assert _last_seen_age(client) == pytest.approx(600, abs=5)
        _age_the_session(client, _last_seen_age(client))
    _age_the_session(client, 901)
    assert client.get("/api/v1/services/", HTTP_X_USER_IDLE_SECONDS="901").status_code in (401, 403)
    assert client.get("/admin/").status_code == 302  # signed out for good


@override_settings(SESSION_IDLE_SECONDS=900)
def test_a_users_own_input_keeps_the_session_and_a_return_after_the_timeout_does_not(client, admin_user):
    client.force_login(admin_user)
    _age_the_session(client, 600)
    assert client.get("/api/v1/services/", HTTP_X_USER_IDLE_SECONDS="5").status_code == 200
    assert _last_seen_age(client) == pytest.approx(5, abs=3)  # written at the input's time, not the poll's
    _age_the_session(client, 901)  # back at the keyboard after the timeout: a click is too late
    assert client.get("/api/v1/services/", HTTP_X_USER_IDLE_SECONDS="0").status_code in (401, 403)


@pytest.mark.parametrize("value", ["abc", "-5", "1.5", "+3", " 7", "\u0663", "", "9" * 40, "0x10", "1e3"])
@override_settings(SESSION_IDLE_SECONDS=900)
def test_a_malformed_idle_header_is_no_activity_and_no_error(client, admin_user, value):
    client.force_login(admin_user)
    _age_the_session(client, 600)
    assert client.get("/api/v1/services/", HTTP_X_USER_IDLE_SECONDS=value).status_code == 200
    assert _last_seen_age(client) == pytest.approx(600, abs=5)


@override_settings(SESSION_IDLE_SECONDS=900)
def test_an_idle_time_past_the_cap_is_no_activity(client, admin_user):
    client.force_login(admin_user)
    _age_the_session(client, 600)
    assert client.get("/api/v1/services/", HTTP_X_USER_IDLE_SECONDS="99999999999").status_code == 200
    assert _last_seen_age(client) == pytest.approx(600, abs=5)


@pytest.mark.parametrize("seconds", [1, 60, 119, -1])
def test_a_timeout_the_once_a_minute_write_cannot_keep_stops_start_up(settings, seconds):
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    settings.SESSION_IDLE_SECONDS = seconds
    with pytest.raises(ImproperlyConfigured, match="SESSION_IDLE_SECONDS"):
        apps.get_app_config("core").ready()


@pytest.mark.parametrize("seconds", [0, 120, 1800])
def test_off_or_two_minutes_and_more_start(settings, seconds):
    from django.apps import apps

    settings.SESSION_IDLE_SECONDS = seconds
    apps.get_app_config("core").ready()
