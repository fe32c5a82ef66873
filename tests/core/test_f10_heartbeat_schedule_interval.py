"""The worker's heartbeat was judged by the settings alone (10 s interval, down past 60 s), not by the beat
schedule that sends it, which Operators may retime: at 120 s a healthy worker read "down" in /readyz ("last
heartbeat 81.0s ago", an error) and "not answering" on the Overview between every two heartbeats. The
thresholds now follow the schedule's interval, never below WORKER_HEARTBEAT_MAX_AGE_SECONDS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core import selectors as core_selectors
from apps.core.selectors import WORKER_HEARTBEAT_CACHE_KEY, probe_worker

pytestmark = pytest.mark.django_db


def _forget() -> None:
    getattr(core_selectors, "forget_heartbeat_interval", lambda: None)()


@pytest.fixture(autouse=True)
def _clean():
    _forget()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)
    yield
    _forget()
    cache.delete(WORKER_HEARTBEAT_CACHE_KEY)


def _retime(every: int) -> None:
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
    task, _ = PeriodicTask.objects.get_or_create(
        name="Worker heartbeat", defaults={"task": "core.heartbeat", "interval": interval, "queue": "default"}
    )
    task.interval, task.crontab = interval, None
    task.save()


def _beat_aged(seconds: float) -> datetime:
    now = datetime.now(UTC)
    at = now - timedelta(seconds=seconds)
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": at.isoformat(), "hostname": "worker-a"}, timeout=3600)
    return now


@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_a_heartbeat_retimed_to_120s_is_not_down_between_beats():
    _retime(120)
    now = _beat_aged(81)
    worker = probe_worker(now=now)
    assert worker["state"] == "ok", worker  # was "down"
    assert worker["alive"] is True
    assert worker["max_age_seconds"] == 720  # six of its intervals, as 60 s is six of 10 s
    status, detail = core_selectors._probe_worker()
    assert status == core_selectors.OK, detail  # was error: "last heartbeat 81.0s ago"


@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_a_retimed_heartbeat_still_reads_late_and_down():
    _retime(120)
    assert probe_worker(now=_beat_aged(400))["state"] == "late"  # past three intervals
    assert probe_worker(now=_beat_aged(721))["state"] == "down"
    assert core_selectors._probe_worker()[0] == core_selectors.ERROR


@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_a_faster_heartbeat_keeps_the_settings_max_age_as_its_floor():
    _retime(5)
    assert probe_worker(now=_beat_aged(20))["state"] == "late"  # three of its 5 s intervals
    assert probe_worker(now=_beat_aged(55))["state"] == "late"  # not down before 60 s
    worker = probe_worker(now=_beat_aged(61))
    assert worker["state"] == "down" and worker["max_age_seconds"] == 60


@override_settings(WORKER_HEARTBEAT_INTERVAL_SECONDS=10, WORKER_HEARTBEAT_MAX_AGE_SECONDS=60)
def test_without_an_interval_schedule_the_settings_decide():
    PeriodicTask.objects.filter(name="Worker heartbeat").delete()
    assert probe_worker(now=_beat_aged(25))["state"] == "ok"
    assert probe_worker(now=_beat_aged(35))["state"] == "late"
    assert probe_worker(now=_beat_aged(61))["state"] == "down"


def test_the_interval_is_read_once_per_process_while_fresh(django_assert_num_queries):
    if not hasattr(core_selectors, "heartbeat_interval_seconds"):
        pytest.fail("no cached read of the heartbeat schedule's interval")
    _retime(120)
    with django_assert_num_queries(1):
        for _ in range(5):
            probe_worker(now=_beat_aged(1))
