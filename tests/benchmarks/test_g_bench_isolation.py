"""Bench servers run on the bench's own database and VAR_DIR with DEBUG off, whatever the shell that started
the bench points at: bench/stack.py set nothing up and its servers inherited a running product's
DATABASE_URL and VAR_DIR (its requests written into the product's rollups) and DEBUG."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO_ROOT

PRODUCT = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/the_product", "VAR_DIR": "/srv/product/var",
           "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "controlplane.settings"}  # fmt: skip

# Servers are not started: Popen is replaced by one that records the environment it was given.
PRELUDE = """
import json, subprocess, sys
sys.path.insert(0, "bench")
import harness

class Started(Exception):
    pass

def popen(command, env, **kwargs):
    print(json.dumps({key: env.get(key) for key in ("DATABASE_URL", "VAR_DIR", "DEBUG", "REDIS_URL")}))
    raise Started

harness.subprocess.Popen = popen
"""


def _bench(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + code], cwd=REPO_ROOT, env={**os.environ, **PRODUCT},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_a_server_is_refused_before_the_bench_is_set_up():
    result = _bench("""
try:
    with harness.server("wsgi"):
        pass
except RuntimeError as refused:
    print("refused:", refused)
""")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: a bench server runs on the bench's own database" in result.stdout


def test_a_server_runs_on_the_benchs_database_var_dir_and_debug_off_whatever_env_says():
    result = _bench("""
harness.isolate("postgres://postgres@127.0.0.1:5432/cp_bench")
try:
    with harness.server("wsgi", env={**__import__("os").environ, "DEBUG": "true", "VAR_DIR": "/srv/product/var",
                                     "REDIS_URL": "redis://127.0.0.1:1/0"}):
        pass
except Started:
    pass
""")
    assert result.returncode == 0, result.stderr[-2000:]
    env = json.loads(result.stdout.strip().splitlines()[-1])
    assert env["DATABASE_URL"].endswith("/cp_bench") and env["DEBUG"] == "false"
    assert env["VAR_DIR"] == str(REPO_ROOT / "var" / "bench")
    assert env["REDIS_URL"] == "redis://127.0.0.1:1/0"  # a bench's own Redis (bench/caching.py) is its to choose


def test_stack_sets_the_bench_up_before_it_starts_a_server():
    result = _bench("""
calls = []
harness.django_setup = lambda database, redis="": (calls.append(("setup", database, redis)),
                                                   harness.isolate(database))
harness.wrk = lambda *args, **kwargs: {"rps": 1.0}
import stack
sys.argv = ["stack.py", "--seconds", "1"]
try:
    stack.main()
except Started:
    print(json.dumps(calls))
""")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    env, calls = json.loads(lines[-2]), json.loads(lines[-1])
    assert calls == [["setup", "postgres://postgres@127.0.0.1:5432/cp_bench", "redis://127.0.0.1:6379/14"]]
    assert env["DATABASE_URL"].endswith("/cp_bench") and env["DEBUG"] == "false"
    assert env["VAR_DIR"] == str(REPO_ROOT / "var" / "bench")
