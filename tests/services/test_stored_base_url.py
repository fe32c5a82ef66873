"""A base URL stored before its rules existed (or written by raw SQL or a fixture) is refused only at its next
edit; until then the registry names the problem: the service's `base_url_error` in the API and admin's list
and page, and a `manage.py check` warning naming the service ids (a warning: the deploy goes on)."""

from io import StringIO

import pytest
from django.core.management import call_command

from apps.services.models import Service
from apps.services.services import service_create

pytestmark = pytest.mark.django_db


def _stored(slug: str, base_url: str) -> Service:
    """A service whose base URL was written around the model's checks (an update is one SQL statement)."""
    service = service_create(name=slug.title(), slug=slug, base_url="https://ok.internal/")
    Service.objects.filter(pk=service.pk).update(base_url=base_url)
    return Service.objects.get(pk=service.pk)


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("https://triage.internal:99999/", "port from 1 to 65535"),
        ("https://triage.internal:0/", "port from 1 to 65535"),
        ("https://triage.internal/api?tenant=icu", "No query string or fragment"),
        ("https://triage.internal/api#top", "No query string or fragment"),
        ("https://user:secret@triage.internal/", "No user name or password"),
        ("ftp://triage.internal/", "http:// or https://"),
        ("http://[::1", "Not a valid URL"),
        ("triage.internal", "Not a valid URL"),
    ],
)
def test_the_api_names_the_problem_of_a_stored_base_url(staff_api, base_url, problem):
    _stored("triage", base_url)
    response = staff_api.get("/api/v1/services/triage/")
    assert response.status_code == 200, response.content
    assert problem in response.json()["base_url_error"]


def test_a_usable_or_missing_base_url_has_no_problem(staff_api):
    service_create(name="Fine", slug="fine", base_url="https://fine.internal:8443/v1")
    service_create(name="None", slug="none", base_url="")
    listed = {row["slug"]: row for row in staff_api.get("/api/v1/services/").json()["results"]}
    assert listed["fine"]["base_url_error"] is None and listed["none"]["base_url_error"] is None


def test_the_problem_is_read_only_in_the_api(staff_api):
    service_create(name="Fine", slug="fine", base_url="https://fine.internal/")
    response = staff_api.patch("/api/v1/services/fine/", {"base_url_error": "forged"}, format="json")
    assert response.status_code == 200 and response.json()["base_url_error"] is None


def test_the_admin_list_and_page_show_the_problem(client, admin_user):
    service = _stored("triage", "https://triage.internal/api?tenant=icu")
    client.force_login(admin_user)
    listed = client.get("/admin/services/service/")
    assert listed.status_code == 200 and "No query string or fragment" in listed.content.decode()
    page = client.get(f"/admin/services/service/{service.pk}/change/")
    assert page.status_code == 200 and "No query string or fragment" in page.content.decode()


def test_manage_py_check_warns_naming_the_services_and_does_not_fail():
    bad = _stored("triage", "https://triage.internal:99999/")
    also_bad = _stored("pharmacy", "https://pharmacy.internal/#x")
    service_create(name="Fine", slug="fine", base_url="https://fine.internal/")
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err)  # raises SystemCheckError on an error, not on a warning
    report = out.getvalue() + err.getvalue()
    assert "services.W001" in report
    assert f"service {bad.pk}: A port from 1 to 65535" in report
    assert f"service {also_bad.pk}: No query string or fragment" in report
    assert "2 service(s)" in report


def test_manage_py_check_is_quiet_when_every_base_url_is_usable():
    service_create(name="Fine", slug="fine", base_url="https://fine.internal/")
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err)
    assert "services.W001" not in out.getvalue() + err.getvalue()
