"""seed_demo uses its own demo client: an application client named 'Demo-Clinical-App' made its create of
'demo-clinical-app' fail with a ValidationError traceback (every `make run` stopped), and one it then took as the
demo's, under the demo's name in any case, was rotated and the operator's application cut off."""

import json
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


@pytest.mark.parametrize("operators_name", ["Demo-Clinical-App", "demo-clinical-app"])
def test_an_operators_client_holding_the_demo_name_is_never_rotated(api, operators_name):
    """seed_demo used a client of the demo's name (in any case) as its own and, not knowing its token, rotated it:
    the operator's application was cut off. The demo now makes its own client beside it."""
    operators = api_client_create(name=operators_name, scopes=["inference"])
    first = _seed()
    assert f"API client {operators_name!r} is not the demo's (an operator's): left as it is." in first
    operators.client.refresh_from_db()
    assert operators.client.rotated_at is None
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {operators.token}").status_code == 200
    token = _token(first)
    whoami = api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert whoami.status_code == 200 and whoami.json()["name"] == "demo-clinical-app-2"
    assert _token(_seed()) == token  # the next run keeps the demo's own client and its token
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {operators.token}").status_code == 200
    assert ApiClient.objects.filter(name__istartswith="demo-clinical-app").count() == 2


def test_the_demos_own_client_is_still_rotated_when_its_token_is_lost(api, settings):
    first = _token(_seed())
    credentials = settings.VAR_DIR / "demo-credentials.json"
    stored = json.loads(credentials.read_text())
    credentials.write_text(json.dumps({**stored, "api_token": "cpk_lost"}))
    second = _token(_seed())
    assert second != first
    assert api.get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {second}").json()["name"] == "demo-clinical-app"
    assert ApiClient.objects.filter(name__istartswith="demo-clinical-app").count() == 1


def test_a_credentials_file_from_before_the_client_id_was_kept_still_names_the_demos_client(api, settings):
    first = _token(_seed())
    credentials = settings.VAR_DIR / "demo-credentials.json"
    stored = json.loads(credentials.read_text())
    del stored["api_client_id"]
    credentials.write_text(json.dumps(stored))
    assert _token(_seed()) == first
    assert ApiClient.objects.filter(name__istartswith="demo-clinical-app").count() == 1
