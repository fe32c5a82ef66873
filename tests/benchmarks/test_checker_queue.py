"""The stuck-run checker is sent to the default queue (read back from the real broker): routed by its name to
the benchmarks queue, it waited behind the day-long run it exists to watch whenever its beat row named no
queue (cleared in admin) or it was sent by hand."""

from __future__ import annotations

import pytest

from apps.benchmarks.tasks import fail_stuck_runs
from controlplane.celery import app


def _taken(queue: str, task_id: str) -> bool:
    """Whether the message with this task id waits in `queue` (taken off it, with whatever else is there)."""
    found = False
    with app.connection_for_write() as broker:
        channel = broker.default_channel
        app.amqp.queues[queue](channel).declare()
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            found = found or message.headers["id"] == task_id
    return found


def test_the_checker_sent_by_hand_goes_to_the_default_queue():
    result = fail_stuck_runs.apply_async()
    assert _taken("default", result.id)
    assert not _taken("benchmarks", result.id)


@pytest.mark.django_db
def test_the_checker_from_a_beat_row_without_a_queue_goes_to_the_default_queue():
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import ModelEntry

    row = PeriodicTask.objects.get(task="benchmarks.fail_stuck_runs")
    row.queue = None  # cleared in admin
    entry = ModelEntry(row, app=app)
    result = fail_stuck_runs.apply_async(entry.args, entry.kwargs, **entry.options)
    assert _taken("default", result.id)
