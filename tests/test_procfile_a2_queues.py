"""`make run`'s Celery workers (the Procfile): an optimizer's model step and a benchmark took both slots of its
one worker (`-Q default,benchmarks,inference --concurrency 2`) for minutes, and no heartbeat, alert evaluation,
rate-limit adaptation or resource sample ran for 65-71 s (/readyz said the worker was down). The short periodic
tasks now have a worker that takes none of the long work; each routed queue has exactly one worker."""

import shlex

import pytest
from django.conf import settings

from controlplane.celery import app
from tests.helpers import REPO_ROOT

SHORT = ("core.heartbeat", "metrics.collect", "metrics.evaluate_alerts", "ratelimits.adapt", "resources.monitor",
         "benchmarks.fail_stuck_runs", "optimizer.fail_stuck_runs")  # fmt: skip
LONG = ("optimizer.run_step", "scaling.forecast", "benchmarks.execute_run", "inference.profile_deployment")


def _queue(task: str) -> str:
    return app.amqp.router.route({}, task)["queue"].name


def _workers() -> dict[str, set[str]]:
    """Each Procfile worker process: the queues it consumes."""
    workers = {}
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        words = shlex.split(command)
        if words[:1] != ["celery"] or "worker" not in words:
            continue
        queues = next(
            (words[i + 1] for i, word in enumerate(words) if word in ("-Q", "--queues")),
            next((word.split("=", 1)[1] for word in words if word.startswith("--queues=")), None),
        )
        assert queues, f"{name} names no queues: it would consume only Celery's default"
        workers[name] = set(queues.split(","))
    return workers


def test_the_workers_consume_disjoint_queues_covering_every_queue():
    workers = _workers()
    assert len(workers) >= 2
    names = list(workers)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not workers[first] & workers[second], (first, second)
    consumed = set().union(*workers.values())
    routed = {queue.name for queue in settings.CELERY_TASK_QUEUES} | {_queue(task) for task in app.tasks}
    assert routed <= consumed, routed - consumed


@pytest.mark.parametrize("task", SHORT)
def test_a_short_periodic_task_has_a_worker_that_takes_no_long_work(task):
    long_queues = {_queue(name) for name in LONG}
    takers = [name for name, queues in _workers().items() if _queue(task) in queues]
    assert len(takers) == 1, takers
    assert not _workers()[takers[0]] & long_queues, (task, _queue(task), long_queues)
