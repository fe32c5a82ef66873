"""`load_synthetic` over indexes already loaded drew its progress bar (at 0%, and again as it closed) before the
loader refused: a refused load draws none, and says why."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def test_a_refused_load_draws_no_progress_bar():
    call_command("load_synthetic", "--patients", "3", "--days", "1", "--seed", "9", "--no-progress", stdout=StringIO())
    err = StringIO()
    with pytest.raises(CommandError, match="already loaded"):
        call_command("load_synthetic", "--patients", "3", "--days", "1", "--seed", "9", stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""


def test_a_load_that_runs_still_draws_its_bar():
    err = StringIO()
    call_command("load_synthetic", "--patients", "2", "--days", "1", "--seed", "8", stdout=StringIO(), stderr=err)
    assert "100%" in err.getvalue()
