"""A release that has to be rolled back needs its migrations reversed: a migration without reverse code (RunPython
without reverse_code, RunSQL without reverse_sql) fails here, in CI, instead of during a hospital's rollback.

On a database of the test's own (tests/deploy/migration_walk.py --all): each app's last two migrations reversed
and everything migrated again, then every migration reversed, newest first, down to zero, and migrated again (about
35 s on a quiet machine, 60-90 s on a busy one). Applying each migration again right after its own reversal, for
every migration, took 77-87 s here: only the apps' last two get that (the first step)."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow  # a process of its own, migrating a throwaway database


def test_every_migration_reverses_and_applies_again(throwaway_database):
    walked = subprocess.run(
        [sys.executable, "-m", "tests.deploy.migration_walk", "--all"], cwd=REPO_ROOT, capture_output=True,
        text=True, env={**os.environ, "DATABASE_URL": throwaway_database}, timeout=540,
    )  # fmt: skip
    assert walked.stdout.strip(), walked.stderr[-3000:]
    failures = json.loads(walked.stdout.strip().splitlines()[-1])
    assert failures == [], "\n".join(failures)
    assert walked.returncode == 0, walked.stderr[-3000:]
