"""A real Celery worker on the real broker (RabbitMQ under `make test`) runs what Django sends."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.db import connection

from apps.core.selectors import worker_ping_answer
from apps.core.tasks import heartbeat
from tests.helpers import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    name = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = {**os.environ, "DATABASE_URL": _test_database_url()}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", "default", "-P", "solo",
         "-n", name, "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    yield name
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def _test_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def test_task_sent_from_django_runs_on_the_worker(worker):
    nonce = uuid.uuid4().hex
    heartbeat.apply_async(kwargs={"nonce": nonce})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not worker_ping_answer(nonce):
        time.sleep(0.1)
    answer = worker_ping_answer(nonce)
    assert answer is not None, "the worker did not run the task within 60 s"
    assert answer["hostname"] == worker
