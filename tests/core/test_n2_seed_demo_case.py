"""seed_demo finds its client as names are compared since 929f76c (in any case): an application client named
'Demo-Clinical-App' made its create of 'demo-clinical-app' fail with a ValidationError traceback, stopping every
seed_demo and so every `make run`."""

from io import StringIO

import pytest
from django.core.management import call_command

from apps.accounts.models import ApiClient
from apps.accounts.services import api_client_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def _seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def _token(output: str) -> str:
    line = next(line for line in output.splitlines() if "Authorization: Bearer" in line)
    return line.split("Bearer ")[1].split("'")[0]


def test_a_client_named_alike_in_another_case_is_used_as_the_demo_client(api):
    api_client_create(name="Demo-Clinical-App", scopes=["inference"])
    first = _seed()
    assert "'Demo-Clinical-App' holds the demo client's name (in another case)" in first
    assert list(ApiClient.objects.filter(name__iexact="demo-clinical-app").values_list("name", flat=True)) == [
        "Demo-Clinical-App"
    ]
    token = _token(first)
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert _token(_seed()) == token  # the next run keeps it, as for the demo's own client
