"""The resource monitor's schedule sent by two beats (an evicted pod terminating beside its replacement) takes
one sample of a host per half interval: two sends taken at once by two workers on one host (threads here,
each with its own PostgreSQL session) gave the host two samples, its calm samples counted twice (an open
recommendation resolved in half of RECOVER_SAMPLES' time) and its occurrences too. A run by hand always
samples."""

from __future__ import annotations

import socket
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core.selectors import worker_ping_answer
from apps.core.tasks import heartbeat
from apps.resources import services, tasks
from apps.resources.models import ResourceSample
from tests.helpers import at_once, wait_for
from tests.resources.support import use_thresholds

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = {"cpu": 101.0, "memory": 101.0, "disk": 101.0, "pool": 90.0, "redis_memory": 101.0}
SCHEDULE = "Resource monitor"


def _sent_by_beat() -> int:
    return tasks.monitor.apply(headers={"periodic_task_name": SCHEDULE}).get()


def _own_samples() -> int:
    return ResourceSample.objects.filter(host=socket.gethostname(), measured_at=None).count()


def test_two_sends_taken_at_once_sample_the_host_once():
    with use_thresholds(QUIET):
        at_once(_sent_by_beat)
    assert _own_samples() == 1


def test_a_send_half_an_interval_after_the_last_sample_samples_again():
    with use_thresholds(QUIET):
        _sent_by_beat()
        ResourceSample.objects.update(at=timezone.now() - services.MONITOR_INTERVAL / 2 - timedelta(seconds=1))
        _sent_by_beat()
    assert _own_samples() == 2


def test_the_gap_follows_the_schedules_interval_as_an_admin_set_it():
    every_ten, _ = IntervalSchedule.objects.get_or_create(every=10, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(name=SCHEDULE, defaults={"task": "resources.monitor", "interval": every_ten})
    with use_thresholds(QUIET):
        _sent_by_beat()
        ResourceSample.objects.update(at=timezone.now() - timedelta(seconds=6))  # past 5 s, within 15 s
        _sent_by_beat()
    assert _own_samples() == 2


def test_runs_by_hand_always_sample():
    with use_thresholds(QUIET):
        tasks.monitor()
        tasks.monitor()
    assert _own_samples() == 2


@pytest.mark.slow
def test_a_real_worker_reads_the_schedules_header(worker):
    """On a worker the header is an attribute of the request (an eager apply keeps it under `headers`): two
    sends of the schedule, then one by hand, taken in order by one worker, are two samples, not three."""
    with use_thresholds(QUIET):
        tasks.monitor.apply_async(headers={"periodic_task_name": SCHEDULE})
        tasks.monitor.apply_async(headers={"periodic_task_name": SCHEDULE})
        tasks.monitor.apply_async()  # by hand: it samples
        nonce = uuid.uuid4().hex
        heartbeat.apply_async(kwargs={"nonce": nonce})  # answered once the worker took the three before it
        wait_for(lambda: worker_ping_answer(nonce), 120, "the worker to take the four tasks")
    assert _own_samples() == 2
