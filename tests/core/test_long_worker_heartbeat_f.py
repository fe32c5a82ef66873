"""/readyz's `long_worker` check: the worker of the long queues (benchmarks, inference: the Procfile's and the
cluster's `longworker`) is judged by the heartbeat each long queue last carried to a worker. The worker check
reads only the heartbeat beat sends on `default`, so with the long worker gone /readyz said ok while benchmark
runs, optimizer steps and forecasts waited in their queues for ever. A gone long worker is `degraded`, never an
error: the api still serves."""

import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.cache import cache

from apps.core import selectors
from apps.core.selectors import DEGRADED, OK, WORKER_HEARTBEAT_CACHE_KEY, readiness_report
from apps.core.services import worker_heartbeat_record
from apps.core.tasks import heartbeat
from tests.helpers import REPO_ROOT, database_url, log_in_report, stop_group, wait_for

pytestmark = pytest.mark.django_db


def long_queues() -> tuple[str, ...]:
    return selectors.long_queues()


def queue_heartbeat_cache_key(queue: str) -> str:
    return selectors.queue_heartbeat_cache_key(queue)


def _only_the_default_worker_beats() -> None:
    """The `worker` (default queue) took beat's heartbeat just now; the long worker is not there."""
    cache.set(WORKER_HEARTBEAT_CACHE_KEY, {"at": datetime.now(UTC).isoformat(), "hostname": "celery@short"}, 3600)


def test_the_long_queues_are_the_benchmarks_and_inference_queues():
    assert set(long_queues()) == {"benchmarks", "inference"}


def test_readyz_says_the_long_worker_is_gone_while_the_default_worker_beats(client):
    _only_the_default_worker_beats()
    overall, checks = readiness_report()
    assert checks["worker"]["status"] == OK, checks
    assert checks["long_worker"]["status"] == DEGRADED, checks  # was: no such check, and overall ok
    assert "benchmarks" in checks["long_worker"]["detail"] and "inference" in checks["long_worker"]["detail"]
    assert overall == DEGRADED
    body = client.get("/readyz").json()
    assert body["status"] == DEGRADED and body["checks"]["long_worker"]["status"] == DEGRADED
    assert client.get("/readyz").status_code == 200  # degraded: the api stays in its load balancer


def test_a_long_worker_gone_for_minutes_reads_down_and_degraded_never_error():
    _only_the_default_worker_beats()
    stamped = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    for queue in long_queues():
        cache.set(queue_heartbeat_cache_key(queue), {"at": stamped, "hostname": "long@pod-1"}, timeout=3600)
    status, detail = selectors._probe_long_worker()
    assert status == DEGRADED, detail
    assert "(down)" in detail and "long@pod-1" in detail
    with pytest.MonkeyPatch.context() as patch:  # even where an operator requires it: never takes pods out
        patch.setattr("django.conf.settings.READYZ_REQUIRED", ["database", "long_worker"])
        overall, checks = readiness_report()
    assert overall == DEGRADED and checks["long_worker"]["status"] == DEGRADED, checks


def test_a_worker_of_every_queue_is_ok_on_both_checks():
    worker_heartbeat_record(hostname="celery@all")  # one worker of every queue (and what tests record)
    overall, checks = readiness_report()
    assert overall == OK, checks
    assert checks["worker"]["status"] == checks["long_worker"]["status"] == OK, checks
    assert "benchmarks" in checks["long_worker"]["detail"] and "celery@all" in checks["long_worker"]["detail"]


def _start_worker(queues: str, name: str, log: Path) -> subprocess.Popen:
    env = {"DATABASE_URL": database_url()}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", "worker", "-Q", queues, "-P", "solo", "-n", name,
         "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        cwd=REPO_ROOT, env={**__import__("os").environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beats_heartbeat_on_default_reaches_the_long_worker_and_its_absence_shows(request):
    """As make run and the cluster run them: `worker` on default, `longworker` on benchmarks,inference. Beat's
    heartbeat (on default) is relayed to each long queue and the long worker takes it: both checks ok. With the
    long worker stopped, the next heartbeats still reach the default worker and long_worker stays degraded."""
    tag = uuid.uuid4().hex[:8]
    folder = Path(tempfile.mkdtemp(prefix="f-long-worker-"))
    short_log = log_in_report(request, folder / "short.log", "short worker")
    long_log = log_in_report(request, folder / "long.log", "long worker")
    short = _start_worker("default", f"short-{tag}@localhost", short_log)
    long = _start_worker("benchmarks,inference", f"long-{tag}@localhost", long_log)
    try:
        heartbeat.apply_async(queue="default")  # what beat sends

        def relayed() -> bool:
            # Not long_worker ok alone: the long worker's first beacon reads ok ("not relayed") while the default
            # worker has taken no heartbeat yet, and on a loaded machine the short worker can start after it.
            checks = readiness_report()[1]
            return (
                f"short-{tag}" in checks["worker"]["detail"]
                and "not relayed" not in checks["long_worker"]["detail"]
                and checks["long_worker"]["status"] == OK
            )

        wait_for(
            relayed, 120, "the heartbeat taken by the short worker and relayed to the long one", folder / "long.log"
        )
        checks = readiness_report()[1]
        assert f"short-{tag}" in checks["worker"]["detail"], checks
        assert f"long-{tag}" in checks["long_worker"]["detail"], checks

        stop_group(long, timeout=60)
        for queue in long_queues():
            cache.delete(queue_heartbeat_cache_key(queue))  # as if its heartbeats had aged out
        cache.delete(queue_heartbeat_cache_key("default"))
        heartbeat.apply_async(queue="default")
        wait_for(lambda: readiness_report()[1]["worker"]["status"] == OK, 120, "the default worker's heartbeat")
        checks = readiness_report()[1]
        assert checks["long_worker"]["status"] == DEGRADED, checks
    finally:
        stop_group(long, timeout=60)
        stop_group(short, timeout=60)
