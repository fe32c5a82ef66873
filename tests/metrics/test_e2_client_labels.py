"""Request rollups label each signed-in user by their own `user:<pk>` (the Rate limits page names the busiest
client by it, as the limits count each user apart), an API client by its name, anyone else "anonymous"; the label
never costs a session or user query the request did not already make."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils.functional import SimpleLazyObject
from rest_framework.test import APIClient

from apps.accounts.roles import OPERATORS
from apps.metrics.middleware import _client_label
from apps.metrics.models import RequestRollup
from apps.metrics.recorder import recorder

pytestmark = pytest.mark.django_db

OVERVIEW = "/api/v1/ratelimits/"
WHOAMI = "/api/v1/whoami/"


@pytest.fixture
def fresh_rollups():
    """Nothing recorded by earlier tests: their pending requests are written, then all rollups dropped."""
    recorder.flush()
    RequestRollup.objects.all().delete()


def _labels(route: str) -> set[str]:
    recorder.flush()
    return set(RequestRollup.objects.filter(route=route).values_list("client", flat=True))


def _operator(django_user_model, username: str):
    user = django_user_model.objects.create_user(username, f"{username}@example.org", "pw-operator-1", is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATORS))
    return user


def test_each_signed_in_users_dashboard_requests_carry_their_own_id(fresh_rollups, django_user_model):
    first, second = _operator(django_user_model, "dr.jane.roe"), _operator(django_user_model, "dr.john.doe")
    for user in (first, second):
        browser = Client()  # a dashboard tab: a real Django session, read by DRF's session authentication
        browser.force_login(user)
        assert browser.get(OVERVIEW).status_code == 200
    assert _labels(OVERVIEW.lstrip("/")) == {f"user:{first.pk}", f"user:{second.pk}"}
    labels = set(RequestRollup.objects.values_list("client", flat=True))
    assert not any("jane" in label or "john" in label for label in labels)  # the primary key, never a username


def test_a_user_drf_authenticated_itself_is_labelled_by_id_not_anonymous(fresh_rollups, operator_user):
    api = APIClient()
    api.force_authenticate(operator_user)  # request.user is the User itself, with no lazy wrapper around it
    assert api.get(WHOAMI).status_code == 200
    assert _labels(WHOAMI.lstrip("/")) == {f"user:{operator_user.pk}"}


def test_an_api_client_keeps_its_name_and_nobody_signed_in_is_anonymous(fresh_rollups, issue_token):
    token = issue_token("patient:read", name="ward-tablet")
    api = APIClient()
    assert api.get(WHOAMI, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert APIClient().get(WHOAMI).status_code == 401
    assert _labels(WHOAMI.lstrip("/")) == {"ward-tablet", "anonymous"}


def test_a_request_that_never_read_the_user_costs_no_session_or_user_query(fresh_rollups, operator_user):
    """/healthz reads no session: labelling it must not load the signed-in user (a session and a user query on
    every probe) just to name it, so it stays "anonymous"."""
    browser = Client()
    browser.force_login(operator_user)
    tables = (operator_user._meta.db_table, "django_session")
    with CaptureQueriesContext(connection) as queries:
        assert browser.get("/healthz").status_code == 200
    assert not [query["sql"] for query in queries if any(table in query["sql"] for table in tables)]
    assert _labels("healthz") == {"anonymous"}


def test_a_lazy_user_nothing_asked_for_is_left_unevaluated():
    def load_user():
        raise AssertionError("the label loaded the user")

    request = RequestFactory().get("/healthz")
    request.user = SimpleLazyObject(load_user)
    assert _client_label(request) == "anonymous"
