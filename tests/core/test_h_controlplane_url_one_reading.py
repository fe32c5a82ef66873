"""CONTROLPLANE_URL is read one way (apps.core.links.base_url): seed_demo took it raw while bench and optimize
stripped it, so set but empty it refused to seed (`--base-url '' cannot be used: Empty.`, where the README gives
make run's address as the default), and with a trailing slash it printed `https://cp.example.org//admin/`."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.core.links import absolute_url
from apps.services.models import Service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("", "http://127.0.0.1:8000"),
        ("  ", "http://127.0.0.1:8000"),
        ("https://cp.example.org/", "https://cp.example.org"),
    ],
    ids=["empty", "blank", "trailing slash"],
)
def test_seed_demo_uses_the_address_bench_and_optimize_print(monkeypatch, settings, value: str, address: str) -> None:
    monkeypatch.setenv("CONTROLPLANE_URL", value)
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    printed = out.getvalue()
    assert f"Admin:     {address}/admin/ " in printed, printed
    assert f"Dashboard: {address}/dashboard/\n" in printed, printed
    assert absolute_url("/admin/") == f"{address}/admin/"  # bench's and optimize's links: the same address
    assert Service.objects.get(slug="clinical-api").base_url == address  # where its demo load plan sends requests
    assert json.loads((Path(settings.VAR_DIR) / "demo-credentials.json").read_text())["base_url"] == address
