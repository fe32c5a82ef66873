"""`optimize --no-wait --inline` ran inline with exit status 0, --no-wait silently ignored: the two options
are now mutually exclusive, refused by the argument parser (exit status 2, a message, no run stored)."""

import os

import pytest

from apps.optimizer.models import OptimizationRun
from tests.helpers import database_url, manage

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_wait_with_inline_is_refused_with_exit_status_2():
    result = manage("optimize", "scaling", "--no-wait", "--inline", env={**os.environ, "DATABASE_URL": database_url()})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not allowed with argument" in result.stderr and "--inline" in result.stderr
    assert not OptimizationRun.objects.exists()
