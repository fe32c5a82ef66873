"""`make run PORT=...` after a run on another port: the demo API service (the demo load plan's target) follows
the new address, unless an admin gave it one of their own."""

from io import StringIO

import pytest
from django.core.management import call_command

from apps.benchmarks.models import BenchmarkPlan
from apps.services.models import Service
from apps.services.services import service_update

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def _seed(base_url: str) -> None:
    call_command("seed_demo", "--base-url", base_url, stdout=StringIO(), stderr=StringIO())


def test_a_run_on_another_port_moves_the_demo_load_plan_there():
    _seed("http://127.0.0.1:8000")
    _seed("http://127.0.0.1:9000")  # 8000 taken now, by something else: its benchmark token must not go there
    plan = BenchmarkPlan.objects.select_related("service").get(name="clinical-api load")
    assert plan.service.base_url == "http://127.0.0.1:9000"


def test_an_address_an_admin_gave_the_service_is_kept():
    _seed("http://127.0.0.1:8000")
    service_update(service=Service.objects.get(slug="clinical-api"), base_url="https://clinical.example.org")
    _seed("http://127.0.0.1:9000")
    assert Service.objects.get(slug="clinical-api").base_url == "https://clinical.example.org"


def test_a_database_seeded_before_the_address_was_remembered_follows_too(settings):
    _seed("http://127.0.0.1:8000")  # make run's default address
    credentials = settings.VAR_DIR / "demo-credentials.json"
    credentials.write_text(credentials.read_text().replace(', "base_url": "http://127.0.0.1:8000"', ""))
    _seed("http://127.0.0.1:9000")
    assert Service.objects.get(slug="clinical-api").base_url == "http://127.0.0.1:9000"
