"""seed_demo turned every load_synthetic refusal into a note and went on, status 0: only "already loaded" (another
load got there first) is a reason to keep the demo going; any other refusal fails the command."""

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.clinical.loader import synthetic_patients_load
from apps.clinical.models import Patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def test_a_refusal_other_than_already_loaded_fails_the_command(monkeypatch):
    # Mocked: a refusal seed_demo's own arguments cannot provoke; load_synthetic's --end bound moved past now.
    monkeypatch.setattr(
        "apps.clinical.management.commands.load_synthetic.EARLIEST_END", datetime(2999, 1, 1, tzinfo=UTC)
    )
    with pytest.raises(CommandError, match="--end must be between"):
        call_command("seed_demo", "--patients", "3", stdout=StringIO(), stderr=StringIO())
    assert Patient.objects.count() == 0


def test_patients_another_load_stored_meanwhile_are_a_note(monkeypatch):
    def loaded_meanwhile(**kwargs):
        synthetic_patients_load(**kwargs)  # the other load's patients, stored after the range was checked
        return synthetic_patients_load(**kwargs)  # refused: AlreadyLoaded

    monkeypatch.setattr("apps.clinical.management.commands.load_synthetic.synthetic_patients_load", loaded_meanwhile)
    stderr = StringIO()
    call_command("seed_demo", "--patients", "3", stdout=StringIO(), stderr=stderr)
    assert "Demo patients not loaded" in stderr.getvalue()
    assert Patient.objects.count() == 3
