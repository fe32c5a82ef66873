"""A real Celery worker on the real broker (RabbitMQ under `make test`) runs what Django sends."""

import time
import uuid

import pytest

from apps.core.selectors import worker_ping_answer
from apps.core.tasks import heartbeat

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_task_sent_from_django_runs_on_the_worker(worker):
    nonce = uuid.uuid4().hex
    heartbeat.apply_async(kwargs={"nonce": nonce})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not worker_ping_answer(nonce):
        time.sleep(0.1)
    answer = worker_ping_answer(nonce)
    assert answer is not None, "the worker did not run the task within 60 s"
    assert answer["hostname"] == worker
