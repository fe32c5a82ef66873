"""`manage.py ping_worker`: its own input is checked before anything is sent."""

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize("timeout", ["0", "-5", "nan", "inf"])
def test_a_timeout_that_cannot_be_waited_is_refused_before_sending(timeout):
    """0, a negative or nan sent a task that expired at once and waited not at all ("No worker ran the task within
    -5 s", as if no worker were running); inf never gave up."""
    with pytest.raises(CommandError, match="--timeout must be a number of seconds more than 0"):
        call_command("ping_worker", "--timeout", timeout)
