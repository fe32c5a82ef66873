from io import StringIO

import pytest
from django.core.management import call_command

from apps.clinical.loader import synthetic_patients_load
from apps.optimizer.models import OptimizationRun
from tests.clinical.conftest import LOAD_END


@pytest.fixture
def data():
    synthetic_patients_load(patients=40, days=1, seed=21, end=LOAD_END, batch_size=20, workers=1)


def optimize(*args: str) -> tuple[OptimizationRun, str, int]:
    """`manage.py optimize ...` as an admin would run it: the run, its output and its exit code."""
    out, err = StringIO(), StringIO()
    try:
        call_command("optimize", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return OptimizationRun.objects.latest("started_at"), out.getvalue() + err.getvalue(), code
