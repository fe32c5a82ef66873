"""What the bench scripts leave behind them: a bench's token and the wrk scripts that carry it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from apps.accounts.models import ApiClient
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def _bench_process(code: str) -> subprocess.CompletedProcess:
    """Run `code` as a bench script does (the harness imported from bench/), on the test database."""
    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "DJANGO_SETTINGS_MODULE": "controlplane.settings"}  # fmt: skip
    prelude = "import sys; sys.path.insert(0, 'bench'); import django; django.setup(); import harness\n"
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _bench_python(code: str) -> str:
    result = _bench_process(code)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_a_benchs_token_is_short_lived_and_revoked_when_it_exits():
    """clinician_token made a PHI-reading token that never expired and was never revoked: one more valid
    token in the database after every bench run."""
    client_id = int(_bench_python("print(harness.short_lived_token('bench-x', ['patient:read'], hours=2).client.pk)"))
    client = ApiClient.objects.get(pk=client_id)
    assert client.revoked_at is not None and client.expires_at is not None
    assert (client.expires_at - client.created_at).total_seconds() == pytest.approx(2 * 3600, abs=60)

    _bench_python("harness.clinician_token('bench')")
    assert ApiClient.objects.filter(name__startswith="bench-", revoked_at=None).count() == 0


def test_the_wrk_script_holding_the_token_is_removed_when_the_bench_exits():
    """random_paths_script wrote the bench's bearer token into a Lua file in /tmp and left it there."""
    path = _bench_python("print(harness.random_paths_script(['/x'], {'Authorization': 'Bearer t0ken'}))")
    assert path.endswith(".lua") and not Path(path).exists()


def test_a_bench_stopped_by_sigterm_still_removes_the_script_and_revokes_its_token():
    """The clean-ups are atexit hooks, which Python's default SIGTERM skips: a bench killed by a CI timeout left
    its Lua file with the bearer token in /tmp and the token valid for its 12 hours."""
    code = (
        "import os, signal, time\n"
        "token = harness.short_lived_token('bench-killed', ['patient:read'], hours=2)\n"
        "print(harness.random_paths_script(['/x'], {'Authorization': 'Bearer ' + token.token}), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(30)\n"
    )
    result = _bench_process(code)
    assert result.returncode == 143, result.stderr[-2000:]
    assert not Path(result.stdout.strip()).exists()
    assert ApiClient.objects.get(name__startswith="bench-killed").revoked_at is not None
