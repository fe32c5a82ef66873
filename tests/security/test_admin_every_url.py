"""Every registered ModelAdmin, every kind of admin URL, as a superuser, an Operator and a Viewer: never a 5xx.

The walk is built from `admin.site._registry`, so an admin registered later is walked too: its list (as a
superuser: each filter's first choices, each sortable column, search, pages, the date hierarchy's drill-down),
add, change, delete and history pages, each action with none, one and several rows selected, the autocomplete
endpoint of each relation, and the custom admin views. Its forms take bad input (negative, huge, non-finite,
unicode, 10,000 characters) as field errors, never a 500."""

from __future__ import annotations

import io

import pytest
from django.contrib import admin
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import transaction
from django.forms import CheckboxInput
from django.test import Client
from django.urls import reverse

from apps.accounts.roles import OPERATORS, VIEWERS
from apps.benchmarks.models import BenchmarkPlan
from apps.inference.models import ModelDeployment
from apps.ratelimits.models import RateLimitPolicy
from apps.services.models import Service
from tests.admin_pages import page_data, rows_the_workers_make

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
IDS = [model._meta.label for model, _ in REGISTERED]
ROLES = ["superuser", "operator", "viewer"]
KINDS = ("changelist", "add", "change", "delete", "history")
# What an admin might type into any field: each must be a field error or a valid value, never a 500.
BAD_VALUES = ["-1", "9" * 25, "nan", "ü✓𝄞", "x" * 10_000]


def _rows() -> None:
    """A row of every model an admin lists, on top of what seed_demo makes (services, policies, schedules,
    deployments, plans): the lists only the workers fill."""
    service = Service.objects.order_by("pk").first()
    user = User.objects.filter(is_superuser=True).first()
    deployment = ModelDeployment.objects.order_by("pk").first()
    plan = BenchmarkPlan.objects.filter(service=service).first() or BenchmarkPlan.objects.create(
        name="walk plan", service=service, requests=[]
    )
    policy = RateLimitPolicy.objects.order_by("pk").first()
    rows_the_workers_make(service=service, plan=plan, policy=policy, deployment=deployment, user=user, label="walk",
                          run_statuses=("pending", "succeeded"))  # fmt: skip


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """seed_demo's rows and a row of every listed model, made once for the module inside a transaction rolled
    back at its end (each test runs in a savepoint of it, so an action's changes go with the test)."""
    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", "--base-url", "http://127.0.0.1:9400", stdout=io.StringIO())
        _rows()
        users = {"superuser": User.objects.filter(is_superuser=True).first()}
        for role, group in (("operator", OPERATORS), ("viewer", VIEWERS)):
            users[role] = User.objects.create_user(f"walk-{role}", f"{role}@example.org", "pw-Long-enough-1",
                                                   is_staff=True)  # fmt: skip
            users[role].groups.set(Group.objects.filter(name=group))
        yield users
        transaction.set_rollback(True)


def _client(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def _url(model, kind: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{kind}", args=args)


class Walk:
    """Requests made and the 5xx among them."""

    def __init__(self, client: Client) -> None:
        self.client, self.failures = client, []

    def get(self, url: str, query: dict | None = None):
        return self._checked("GET", url, query, self.client.get(url, query or {}))

    def post(self, url: str, data: dict):
        return self._checked("POST", url, data, self.client.post(url, data))

    def _checked(self, method: str, url: str, data, response):
        if response.status_code >= 500:
            self.failures.append((method, url, str(data)[:120], response.status_code))
        return response


def _changelist_links(walk: Walk, url: str, response) -> None:
    """Each filter's first choices, each sortable column, the date hierarchy three levels down, search, pages."""
    changelist = response.context["cl"]
    for spec in changelist.filter_specs:
        for choice in [choice for choice in spec.choices(changelist) if choice.get("query_string")][:3]:
            walk.get(url + choice["query_string"])
    for column in range(len(changelist.list_display)):
        walk.get(url, {"o": f"-{column}"})
    level = changelist
    for _ in range(3):
        link = next((c["link"] for c in (date_hierarchy(level) or {}).get("choices") or [] if c.get("link")), None)
        page = walk.get(url + link) if link else None
        if page is None or page.status_code != 200 or "cl" not in (page.context or {}):
            break
        level = page.context["cl"]
    for query in ({"q": "ü𝄞"}, {"q": "x" * 300}, {"p": "2"}, {"p": "99999"}, {"all": ""}, {"o": "99"}):
        walk.get(url, query)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
def test_every_admin_url_of_every_model_answers_without_a_server_error(seeded, role, model, model_admin):
    walk = Walk(_client(seeded[role]))
    changelist_url = _url(model, "changelist")
    response = walk.get(changelist_url)
    if response.status_code == 200 and role == "superuser":  # the links a role sees are the superuser's, or fewer
        _changelist_links(walk, changelist_url, response)
    walk.get(_url(model, "add"))
    rows = list(model_admin.get_queryset(response.wsgi_request).order_by("pk")[:3])
    for row in rows:
        for kind in ("change", "delete", "history"):
            walk.get(_url(model, kind, row.pk))
    walk.get(_url(model, "change", "999999999"))
    walk.get(_url(model, "change", "not-an-id"))
    selections = [[], [str(row.pk) for row in rows[:1]], [str(row.pk) for row in rows]]
    for action in model_admin.get_actions(response.wsgi_request):
        for selected in selections:
            walk.post(changelist_url, {"action": action, "_selected_action": selected, "index": "0"})
    standard = {f"{model._meta.app_label}_{model._meta.model_name}_{kind}" for kind in KINDS}
    for pattern in model_admin.get_urls():  # the admin's own views (a user's password page)
        if getattr(pattern, "name", None) not in (None, *standard) and (rows or not pattern.pattern.regex.groups):
            walk.get(reverse(f"admin:{pattern.name}", args=[rows[0].pk] if pattern.pattern.regex.groups else []))
    for field in model._meta.get_fields():
        if field.is_relation and field.concrete:
            walk.get("/admin/autocomplete/", {"app_label": model._meta.app_label, "model_name": model._meta.model_name,
                                              "field_name": field.name, "term": "a"})  # fmt: skip
    assert walk.failures == []
    assert rows or not model._default_manager.exists() or role != "superuser", "the walk reached no row"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_the_admin_index_and_custom_admin_views_answer_without_a_server_error(seeded, role):
    walk = Walk(_client(seeded[role]))
    for url in ("/admin/", "/admin/overview/", "/admin/auth/user/not-an-id/password/"):
        walk.get(url)
    for query in ({"service": "x"}, {"service": "999999"}, {"hours": "-1"}):
        walk.get("/admin/overview/", query)
    user = seeded["superuser"]
    walk.get(f"/admin/auth/user/{user.pk}/password/")
    walk.post(f"/admin/auth/user/{user.pk}/password/", {"password1": "x" * 10_000, "password2": "y"})
    assert walk.failures == []


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
def test_every_add_and_change_form_takes_bad_input_as_field_errors(seeded, model, model_admin):
    """Each field of the page (a row's change page, else the add page), in turn, set to each bad value with
    the rest as the page shows them. Tick boxes are left out: any value is a tick."""
    walk = Walk(_client(seeded["superuser"]))
    row = model._default_manager.order_by("pk").first()
    url = _url(model, "change", row.pk) if row is not None else _url(model, "add")
    page = walk.get(url)
    if page.status_code != 200 or "adminform" not in (page.context or {}):
        pytest.skip(f"no form to fill: {page.status_code}")
    shown = page_data(page.context)
    ticks = {
        field.html_name for field in page.context["adminform"].form if isinstance(field.field.widget, CheckboxInput)
    }
    for name in [name for name in shown if not name.startswith("_") and not name.endswith("_FORMS")]:
        for bad in [] if name in ticks else BAD_VALUES:
            with transaction.atomic():  # a value taken is saved: the next one starts from the page again
                walk.post(url, {**shown, name: bad})
                transaction.set_rollback(True)
    assert walk.failures == []
