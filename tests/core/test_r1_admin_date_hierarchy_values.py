"""Every admin with a date hierarchy refuses a part that is no integer in its range with a 400, where it raised
a 500: `?at__year=9999` (the admin steps to year 10000), `?attempt_time__year=99999999999999999999`
(OverflowError), `&__day=99999999999999999999`. A day the month lacks stays the admin's own "?e=1" redirect."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from apps.core.admin_lookups import PlainLookupsAdmin

pytestmark = pytest.mark.django_db

WITH_HIERARCHY = sorted(
    ((model, model_admin) for model, model_admin in admin.site._registry.items() if model_admin.date_hierarchy),
    key=lambda item: item[0]._meta.label,
)
IDS = [model._meta.label for model, _ in WITH_HIERARCHY]


@pytest.fixture
def superuser_client(admin_user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    return client


def _changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def test_the_registry_has_admins_with_a_date_hierarchy():
    labels = set(IDS)
    # resources.ResourceSample filters by day instead (tests/core/test_admin_large_tables.py): its hierarchy's
    # links were a SELECT DISTINCT over every sample.
    assert {"axes.AccessLog"} <= labels, labels


BAD = [
    {"year": "9999"},
    {"year": "10000"},
    {"year": "99999999999999999999"},
    {"year": "0"},
    {"year": "-1"},
    {"year": "\uff12\uff10\uff12\uff16"},  # fullwidth digits: int() reads them, no one types them
    {"year": "2026 "},
    {"year": "2026", "month": "13"},
    {"year": "2026", "month": "0"},
    {"year": "2026", "month": "99999999999999999999"},
    {"year": "2026", "month": "1", "day": "99999999999999999999"},
    {"year": "2026", "month": "1", "day": "32"},
    {"year": "2026", "month": "1", "day": "1.5"},
    {"month": "99999999999999999999"},
    {"day": "99999999999999999999"},
]


@pytest.mark.parametrize("parts", BAD, ids=["&".join(f"{k}={v}" for k, v in parts.items()) for parts in BAD])
@pytest.mark.parametrize(("model", "model_admin"), WITH_HIERARCHY, ids=IDS)
def test_every_date_hierarchy_refuses_a_part_out_of_range_with_a_400(superuser_client, model, model_admin, parts):
    query = {f"{model_admin.date_hierarchy}__{part}": value for part, value in parts.items()}
    response = superuser_client.get(_changelist(model), query)
    assert response.status_code == 400, (model._meta.label, query, response.status_code)
    assert isinstance(model_admin, PlainLookupsAdmin)


GOOD = [
    {"year": "2026"},
    {"year": "2026", "month": "2"},
    {"year": "2026", "month": "02", "day": "28"},
    {"year": "1", "month": "1", "day": "1"},
    {"year": "9998", "month": "12", "day": "31"},
    {"year": "9998"},
]


@pytest.mark.parametrize("parts", GOOD, ids=["&".join(f"{k}={v}" for k, v in parts.items()) for parts in GOOD])
@pytest.mark.parametrize(("model", "model_admin"), WITH_HIERARCHY, ids=IDS)
def test_every_date_hierarchy_serves_a_part_in_range(superuser_client, model, model_admin, parts):
    query = {f"{model_admin.date_hierarchy}__{part}": value for part, value in parts.items()}
    assert superuser_client.get(_changelist(model), query).status_code == 200


@pytest.mark.parametrize(("model", "model_admin"), WITH_HIERARCHY, ids=IDS)
def test_a_day_the_month_lacks_is_the_admins_redirect(superuser_client, model, model_admin):
    field = model_admin.date_hierarchy
    response = superuser_client.get(_changelist(model), {f"{field}__year": "2026", f"{field}__month": "2",
                                                          f"{field}__day": "30"})  # fmt: skip
    assert response.status_code == 302 and response["Location"].endswith("?e=1")
