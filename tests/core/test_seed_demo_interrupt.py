"""Ctrl-C in `make run` while `seed_demo` loads its patients (the README says the next run finishes them)."""

from io import StringIO

import pytest
from django.core.management import call_command

from apps.clinical.models import Patient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path


def test_ctrl_c_while_loading_patients_stops_with_a_line_not_a_traceback(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("apps.clinical.management.commands.load_synthetic.synthetic_patients_load", interrupted)
    stderr = StringIO()
    with pytest.raises(SystemExit) as stopped:
        call_command("seed_demo", "--patients", "5", stdout=StringIO(), stderr=stderr)
    assert stopped.value.code == 130  # what make reports as an interrupt, like the shell's Ctrl-C
    assert "the next `make run` loads the rest" in stderr.getvalue()

    monkeypatch.undo()
    call_command("seed_demo", "--patients", "5", stdout=StringIO(), stderr=StringIO())
    assert Patient.objects.count() == 5
