"""A one-off schedule due during a broker outage is not lost when beat is killed (-9) while it waits for the broker:
its run was written to the database before the send (at most once), and the send then waited for the whole outage,
so the beat restarted after the kill found the one-off run, disabled it, and it was never sent. Its run is now
written back (due again) once the first send fails, and written again just before the send that succeeds. Beat here
is the product's scheduler on a real RabbitMQ behind a proxy the test closes; the kill is a scheduler stopped in its
wait with nothing more written, as kill -9 leaves it."""

from __future__ import annotations

import celery.beat
import pytest
from django_celery_beat.models import PeriodicTask

from apps.core import beat_liveness
from tests.reliability.test_beat_broker_down_f2_send import _app, _broker_gone, _messages, _scheduler, broker  # noqa: F401
from tests.reliability.test_d_one_off_sent_once import _one_off, _ticks

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Killed(BaseException):
    """kill -9: the process ends where it is, nothing more runs (no handler, no sync)."""


def _row(schedule: PeriodicTask) -> tuple[int, bool]:
    return PeriodicTask.objects.values_list("total_run_count", "enabled").get(pk=schedule.pk)


def test_a_one_off_due_in_an_outage_is_sent_by_the_beat_restarted_after_a_kill_in_the_wait(broker, monkeypatch):  # noqa: F811
    proxy, queue, direct = broker
    schedule = _one_off(queue)
    beat = _scheduler(_app(proxy.port, max_retries=20))
    _broker_gone(proxy, beat)
    in_the_wait: list[tuple[int, bool]] = []

    def killed(exc, interval):  # beat waits for its broker; killed -9 during the wait
        in_the_wait.append(_row(schedule))
        monkeypatch.setattr(beat, "_unreserve", lambda *args, **kwargs: None)  # no handler runs after a kill
        raise Killed

    monkeypatch.setattr(beat_liveness, "_log_retry", killed)
    with pytest.raises(Killed):
        _ticks(beat)
    proxy.open()  # the broker is back; beat is restarted
    restarted = _scheduler(_app(proxy.port, max_retries=1))
    _ticks(restarted, schedule.name)
    restarted.sync()
    assert _messages(direct, queue, expected=1) == 1  # was 0: the restarted beat disabled it unsent
    assert in_the_wait == [(0, True)]  # was (1, True): written as run though unsent for the whole wait
    _ticks(_scheduler(_app(proxy.port, max_retries=1)))  # and once only: a later beat disables it
    assert _messages(direct, queue) == 0
    assert _row(schedule)[1] is False  # disabled, as a one-off is once run (its count reset)


def test_the_send_after_the_wait_is_written_as_made_first(broker, monkeypatch):  # noqa: F811
    """At most once still: when the broker comes back, the run is written before the send that succeeds, so a
    beat killed between the two leaves it unsent rather than sent twice."""
    proxy, queue, direct = broker
    schedule = _one_off(queue)
    beat = _scheduler(_app(proxy.port, max_retries=20))
    _broker_gone(proxy, beat)
    waits: list[tuple[int, bool]] = []
    sends: list[tuple[int, bool]] = []

    def broker_back(exc, interval):
        waits.append(_row(schedule))
        proxy.open()

    original = celery.beat.Scheduler.apply_async

    def send(self, entry, *args, **kwargs):  # the row as each send attempt finds it
        sends.append(_row(schedule))
        return original(self, entry, *args, **kwargs)

    monkeypatch.setattr(beat_liveness, "_log_retry", broker_back)
    monkeypatch.setattr(celery.beat.Scheduler, "apply_async", send)
    _ticks(beat, schedule.name)  # no sync after: killed -9 right after the send
    assert waits == [(0, True)]  # written back for the wait (was (1, True))
    assert sends == [(1, True), (1, True)]  # written as made before the first send and before the one that went
    assert _messages(direct, queue, expected=1) == 1
    _ticks(_scheduler(_app(proxy.port, max_retries=1)))  # a beat restarted after a kill now: not sent again
    assert _messages(direct, queue) == 0
    assert _row(schedule)[1] is False  # disabled, as a one-off is once run (its count reset)
