"""A one-off schedule is sent at most once, even when beat is killed (-9) after sending it: beat wrote a run at its
first send, then only every 3 minutes (sync_every), so the beat started after a kill found the one-off not run and
sent it again (a load test or an optimization run twice). Beat here is the product's scheduler on a real RabbitMQ;
the kill is a scheduler dropped without its sync, as kill -9 leaves it."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core import beat_liveness
from tests.reliability.test_beat_broker_down_f2_send import _app, _broker_gone, _messages, _scheduler, broker  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _one_off(queue: str) -> PeriodicTask:
    PeriodicTask.objects.update(enabled=False)  # the migrations' heartbeat: this schedule alone is due
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(
        name=f"d {queue}", task="d.nothing", interval=every, queue=queue, one_off=True,
        last_run_at=timezone.now() - timedelta(hours=2),
    )  # fmt: skip


def _ticks(scheduler, name: str | None = None) -> None:
    """Beat's passes until it has sent the entry `name` (and no further: killed -9 right after it), or five."""
    for _ in range(5):  # the first passes read the schedule; one pass sends one due entry
        scheduler.tick()
        if name in scheduler._dirty:
            return


def test_a_one_off_sent_before_beat_is_killed_is_not_sent_again(broker):  # noqa: F811
    proxy, queue, direct = broker
    schedule = _one_off(queue)
    beat = _scheduler(_app(proxy.port, max_retries=1))
    beat._last_sync = time.monotonic()  # it synced after an earlier send: the next sync is 3 min away (sync_every)
    _ticks(beat, schedule.name)  # sends it; then killed -9
    restarted = _scheduler(_app(proxy.port, max_retries=1))
    _ticks(restarted)
    restarted.sync()
    assert _messages(direct, queue, expected=2) == 1  # was 2: the restarted beat sent it again
    schedule.refresh_from_db()
    assert schedule.enabled is False  # as a one-off is once it has run


def test_a_one_off_never_sent_is_written_back_as_not_run(broker, monkeypatch):  # noqa: F811
    proxy, queue, direct = broker
    schedule = _one_off(queue)
    scheduler = _scheduler(_app(proxy.port, max_retries=1))
    _broker_gone(proxy, scheduler)  # and it stays down past the connection's retries
    monkeypatch.setattr(beat_liveness, "_log_retry", lambda exc, interval: None)
    _ticks(scheduler)  # the run was written before the send; the send failed: killed -9 now, no sync
    schedule.refresh_from_db()
    assert (schedule.total_run_count, schedule.enabled) == (0, True)  # due again for the next beat
    proxy.open()
    _ticks(_scheduler(_app(proxy.port, max_retries=1)))
    assert _messages(direct, queue, expected=1) == 1
