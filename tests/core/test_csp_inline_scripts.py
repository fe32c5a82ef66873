"""django-celery-beat's task form runs an inline script of its own template (the crontab in words): that page's
policy allows exactly that script by its hash, and every other page keeps script-src 'self'."""

import base64
import hashlib
import re

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import resolve
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.core.csp import CSPMiddleware

pytestmark = pytest.mark.django_db

SCRIPT = re.compile(r'<script id="periodic-task-overrides">(.*?)</script>', re.DOTALL)


def _script_src(response) -> list[str]:
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    return policy["script-src"].split()


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@pytest.fixture
def task():
    crontab = CrontabSchedule.objects.create(minute="0", hour="3", timezone="UTC")
    return PeriodicTask.objects.create(name="Nightly thing", task="benchmarks.scheduled_run", crontab=crontab)


@pytest.mark.parametrize("page", ["change", "add"])
def test_the_periodic_task_form_allows_its_own_inline_script_by_hash(admin_client, task, page):
    url = f"/admin/django_celery_beat/periodictask/{task.pk}/change/" if page == "change" else (
        "/admin/django_celery_beat/periodictask/add/"
    )  # fmt: skip
    response = admin_client.get(url)
    assert response.status_code == 200
    [script] = SCRIPT.findall(response.content.decode())
    assert "updateCrontabHelp" in script
    assert _script_src(response) == ["'self'", _sha256(script)]


def test_other_admin_pages_keep_script_src_self(admin_client, task):
    for url in (
        "/admin/",
        "/admin/django_celery_beat/periodictask/",
        "/admin/django_celery_beat/crontabschedule/",
        f"/admin/django_celery_beat/crontabschedule/{task.crontab_id}/change/",
        "/admin/services/service/add/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert _script_src(response) == ["'self'"], url


def test_a_page_with_a_second_script_of_that_id_allows_neither():
    request = RequestFactory().get("/admin/django_celery_beat/periodictask/add/")
    request.resolver_match = resolve(request.path_info)
    script = '<script id="periodic-task-overrides">go()</script>'
    one = CSPMiddleware(lambda request: HttpResponse(script))(request)
    assert _script_src(one) == ["'self'", _sha256("go()")]
    injected = '<script id="periodic-task-overrides">steal()</script>'
    two = CSPMiddleware(lambda request: HttpResponse(injected + script))(request)
    assert _script_src(two) == ["'self'"]
