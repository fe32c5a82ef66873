"""`manage.py ping_worker --timeout`: a timeout past the calendar's end was an OverflowError traceback (the task's
expiry date could not be computed), not the command's own message; a day is the most it waits."""

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize("timeout", ["1e12", "1e300"])
def test_a_timeout_past_a_day_is_refused_with_the_command_s_message(timeout):
    with pytest.raises(CommandError, match="--timeout must be a number of seconds more than 0 and at most 86400"):
        call_command("ping_worker", "--timeout", timeout)
