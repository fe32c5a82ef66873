"""`make run PORT=70000` migrated, then `seed_demo --base-url http://127.0.0.1:70000` failed with a 26-line
traceback (the demo API service's full_clean). The address is checked first: one CommandError line naming
--base-url, and nothing seeded."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.services.models import Service

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://127.0.0.1:70000", "A port from 1 to 65535, or none."),
        ("http://127.0.0.1:0", "A port from 1 to 65535, or none."),
        ("127.0.0.1:8000", "Not a valid URL."),
        ("ftp://127.0.0.1:8000", "An http:// or https:// URL."),
        ("http://admin:pw@127.0.0.1:8000", "No user name or password in the URL"),
        ("", "Empty."),
    ],
)
def test_an_unusable_base_url_is_one_line_naming_the_option_before_anything_is_seeded(tmp_path, base_url, problem):
    with pytest.raises(CommandError) as raised:
        call_command("seed_demo", "--base-url", base_url, stdout=StringIO(), stderr=StringIO())
    message = str(raised.value)
    assert message.startswith(f"--base-url {base_url!r} cannot be used: ") and problem in message, message
    assert "\n" not in message
    assert not Service.objects.exists()
    assert not (Path(tmp_path) / "demo-credentials.json").exists()


def test_a_usable_base_url_seeds(tmp_path):
    call_command("seed_demo", "--base-url", "http://127.0.0.1:65535", stdout=StringIO(), stderr=StringIO())
    assert Service.objects.get(slug="clinical-api").base_url == "http://127.0.0.1:65535"
