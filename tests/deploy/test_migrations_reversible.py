"""A release that has to be rolled back needs its migrations reversed: a migration without reverse code (RunPython
without reverse_code, RunSQL without reverse_sql) fails here, in CI, instead of during a hospital's rollback.

Each app's last two migrations are reversed on a migrated database of the test's own (tests/deploy/migration_walk.py),
then everything is migrated again: a new migration is among them while its release is the latest. Reversing every
migration to zero as well (with a back-forward-back of each) took 77-87 s here, past this test's 60 s budget: run
it by hand with `python -m tests.deploy.migration_walk --all` (every migration reversed, newest first, to zero)."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow  # a process of its own, migrating a throwaway database


def test_each_apps_newest_migrations_reverse_and_apply_again(throwaway_database):
    walked = subprocess.run(
        [sys.executable, "-m", "tests.deploy.migration_walk"], cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": throwaway_database}, timeout=540,
    )  # fmt: skip
    assert walked.stdout.strip(), walked.stderr[-3000:]
    failures = json.loads(walked.stdout.strip().splitlines()[-1])
    assert failures == [], "\n".join(failures)
    assert walked.returncode == 0, walked.stderr[-3000:]
