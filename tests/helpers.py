"""Helpers for tests that start real processes of the product."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from apps.core.ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# The variables that move the product off its embedded defaults.
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "PROMETHEUS_MULTIPROC_DIR",
)


def embedded_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh checkout: none of the service variables set."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES and not k.startswith("DJANGO_")}
    env.update(VAR_DIR=str(var_dir), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    return free_port()


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run Python with the product's settings in a separate process (settings are read at import)."""
    env = {**env, "DJANGO_SETTINGS_MODULE": "controlplane.settings"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_redis(port: int, *options: str) -> subprocess.Popen:
    """A redis-server of the test's own on `port` (no persistence unless `options` ask for it), answering."""
    import redis

    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *options],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


@contextmanager
def behind_an_uncommitted_insert(insert: Callable[[], object]) -> Iterator[None]:
    """Two writers at once, the second one's check run before the first committed: `insert` runs in a
    transaction of another PostgreSQL session, held open until a statement of this block waits on its row's
    lock, then committed. For tests marked django_db(transaction=True): each session commits."""
    from django.db import connection, connections, transaction

    def waiting_on_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0] > 0

    inserted, commit = threading.Event(), threading.Event()

    def other_writer() -> None:
        try:
            with transaction.atomic():
                insert()
                inserted.set()
                commit.wait(60)
        finally:
            connections.close_all()

    def release_once_blocked() -> None:
        try:
            for _ in range(1200):
                if waiting_on_a_lock():
                    break
                time.sleep(0.05)
        finally:
            commit.set()
            connections.close_all()

    other = threading.Thread(target=other_writer)
    other.start()
    assert inserted.wait(60), "the other writer's insert did not run"
    releaser = threading.Thread(target=release_once_blocked)
    releaser.start()
    try:
        yield
    finally:
        commit.set()
        releaser.join()
        other.join()
