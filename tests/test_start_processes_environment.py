"""`make run`'s process manager reads how long a stop waits from the environment: a value that is not a
number of seconds stops it at once (its first step, `--check`, before migrating), naming the variable."""

import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT


def _check(tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "start_processes.py"), "--check"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path / "var"), **env},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("variable", ["RUN_STOP_GRACE_SECONDS", "RUN_QUIT_GRACE_SECONDS"])
@pytest.mark.parametrize("value", ["ten", "nan", "inf", "-5"])
def test_a_grace_period_that_is_no_number_of_seconds_stops_make_run_naming_it(tmp_path, variable, value):
    """ "ten" was a ValueError traceback naming no variable (at the first step of `make run`); "nan" never ended its
    step (no time is >= nan): a server deaf to SIGTERM was waited for until a second Ctrl-C; a negative one
    skipped the graceful stop (SIGQUIT, Celery's cold shutdown, at once)."""
    result = _check(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert variable in result.stderr and "seconds" in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["", "0", "2.5", "60"])
def test_a_grace_period_of_zero_or_more_seconds_or_none_is_taken(tmp_path, value):
    result = _check(tmp_path, RUN_STOP_GRACE_SECONDS=value, RUN_QUIT_GRACE_SECONDS=value)
    assert result.returncode == 0, result.stderr
