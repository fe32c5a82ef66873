"""A schedule due while beat's broker is down: beat waits for the broker (RabbitMQ behind a proxy the test
closes, then opens again on the same port) and sends the due run once it is back, recording it as run then.
Celery's send gave up after its publish retries (about a second), logged `Couldn't apply scheduled task`, and the
run was lost, yet recorded as run (total_run_count, last_run_at). If the broker never comes back within the
connection's retries, the run is not recorded as run."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from datetime import timedelta

import pytest
from celery import Celery
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from kombu import Connection, Exchange, Queue

from apps.core import beat_liveness
from apps.core.beat_liveness import HeartbeatScheduler
from tests.deploy.test_worker_liveness import BrokerProxy
from tests.helpers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# make test exports the suite's broker as CELERY_BROKER_URL (TEST_CELERY_BROKER_URL is the script's own input): read
# only the latter, these tests were skipped in CI.
BROKER = os.environ.get("CELERY_BROKER_URL") or os.environ.get("TEST_CELERY_BROKER_URL", "")
VHOST = BROKER.rsplit("/", 1)[-1] if BROKER.startswith("amqp://") else ""


@pytest.fixture
def broker(monkeypatch):
    if not VHOST:
        pytest.skip("needs RabbitMQ (CELERY_BROKER_URL=amqp://...)")
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery prefers it to the app's broker_url
    proxy = BrokerProxy(free_port())
    proxy.open()
    queue_name = f"f2-beat-{uuid.uuid4().hex[:8]}"
    queue = Queue(queue_name, Exchange(queue_name, type="direct"), routing_key=queue_name, auto_delete=False)
    with Connection(BROKER) as direct:
        queue(direct.default_channel).declare()
        yield proxy, queue_name, direct
        proxy.close()
        channel = direct.default_channel
        queue(channel).delete()
        Exchange(queue_name, type="direct")(channel).delete()


def _app(port: int, max_retries: int) -> Celery:
    app = Celery("f2-beat", set_as_current=False)
    app.conf.update(
        broker_url=f"amqp://guest:guest@127.0.0.1:{port}/{VHOST}",
        broker_connection_max_retries=max_retries,
        broker_connection_timeout=2.0,
        result_expires=None,
        timezone="UTC",
        beat_max_loop_interval=5,
    )
    return app


def _due_schedule(queue: str) -> PeriodicTask:
    PeriodicTask.objects.update(enabled=False)  # the migrations' heartbeat: this schedule alone is due
    every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    return PeriodicTask.objects.create(
        name=f"f2 {queue}", task="f2.nothing", interval=every, queue=queue,
        last_run_at=timezone.now() - timedelta(hours=2),
    )  # fmt: skip


def _messages(direct: Connection, queue: str, *, expected: int = 0) -> int:
    """The messages in `queue`, polled up to 5 s for `expected` of them: a publish is not confirmed, and the
    queue may not hold it yet when read straight after (1 in 6 runs read 0)."""
    channel = direct.default_channel
    count, deadline = 0, time.monotonic() + 5
    while True:
        while channel.basic_get(queue, no_ack=True) is not None:
            count += 1
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def _scheduler(app: Celery) -> HeartbeatScheduler:
    scheduler = HeartbeatScheduler(app=app)
    assert scheduler.producer.connection.connected  # connected while the broker is up, as a running beat is
    assert scheduler.producer.connection.port == int(app.conf.broker_url.split(":")[-1].split("/")[0])
    return scheduler


def _broker_gone(proxy: BrokerProxy, scheduler: HeartbeatScheduler) -> None:
    """RabbitMQ restarts: beat's connection drops (beat sees it at its next read) and the port refuses."""
    proxy.close()
    with contextlib.suppress(Exception):
        scheduler.producer.connection.drain_events(timeout=1)


def _tick_until_sent(scheduler: HeartbeatScheduler, name: str) -> None:
    for _ in range(5):  # the first passes read the schedule; one pass sends one due entry
        scheduler.tick()
        if name in scheduler._dirty:
            break
    scheduler.sync()


def test_a_run_due_while_the_broker_is_down_is_sent_once_it_is_back(broker, monkeypatch):
    proxy, queue, direct = broker
    schedule = _due_schedule(queue)
    scheduler = _scheduler(_app(proxy.port, max_retries=20))
    _broker_gone(proxy, scheduler)
    waits: list[float] = []

    def broker_back(exc, interval):  # beat waits for its broker: it comes back during the first wait
        waits.append(interval)
        if len(waits) == 1:
            proxy.open()

    monkeypatch.setattr(beat_liveness, "_log_retry", broker_back)
    _tick_until_sent(scheduler, schedule.name)
    assert waits, "beat did not wait for its broker"
    assert _messages(direct, queue, expected=1) == 1  # was 0: given up after the publish retries, never sent
    schedule.refresh_from_db()
    assert schedule.total_run_count == 1
    assert schedule.last_run_at > timezone.now() - timedelta(minutes=1)


def test_a_run_never_sent_is_not_recorded_as_run(broker, monkeypatch):
    proxy, queue, direct = broker
    schedule = _due_schedule(queue)
    scheduler = _scheduler(_app(proxy.port, max_retries=1))
    before = schedule.last_run_at
    _broker_gone(proxy, scheduler)  # and it stays down past the connection's retries
    monkeypatch.setattr(beat_liveness, "_log_retry", lambda exc, interval: None)
    _tick_until_sent(scheduler, schedule.name)
    assert _messages(direct, queue) == 0
    schedule.refresh_from_db()
    assert schedule.total_run_count == 0  # was 1: recorded as run though never sent
    assert schedule.last_run_at == before


def test_beat_stopped_while_it_waits_records_no_run(broker, monkeypatch):
    """A redeploy during a RabbitMQ outage: SIGTERM reaches beat while it waits to send. Its handler syncs the
    schedule and exits (SystemExit), and Service.start's `finally` syncs again; the run, never sent, had been
    written as made (the nightly run skipped until the next night)."""
    proxy, queue, direct = broker
    schedule = _due_schedule(queue)
    before = schedule.last_run_at
    scheduler = _scheduler(_app(proxy.port, max_retries=20))
    _broker_gone(proxy, scheduler)

    def sigterm(exc, interval):  # celery.apps.beat's install_sync_handler: sync, then SystemExit
        scheduler.sync()
        raise SystemExit()

    monkeypatch.setattr(beat_liveness, "_log_retry", sigterm)
    with pytest.raises(SystemExit):
        for _ in range(5):
            scheduler.tick()
    scheduler.sync()  # beat.Service.start's finally
    schedule.refresh_from_db()
    assert (schedule.total_run_count, schedule.last_run_at) == (0, before)
    proxy.open()
    assert _messages(direct, queue) == 0
