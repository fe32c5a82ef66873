"""Beat's liveness probe reads a heartbeat file each pass of its loop touches: a real beat, started with
the Deployment's own command, keeps it fresh, and lets it go stale while a pass waits on a database lock
(as behind a migration's ACCESS EXCLUSIVE lock), Running but sending nothing; waiting for its broker, it
is alive. The probe is the manifest's command, run as the kubelet would (no cluster here)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time

import psycopg
import pytest
import yaml

from apps.core.liveness import TOUCH_INTERVAL
from tests.helpers import REPO_ROOT, closed_port, database_url, stop_group, touches_during, wait_for

pytestmark = pytest.mark.slow

BEAT_DEPLOYMENT = REPO_ROOT / "deploy" / "k8s" / "base" / "beat-deployment.yaml"


def _container() -> dict:
    return yaml.safe_load(BEAT_DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"][0]


def _probe(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    """The Deployment's probe command, from the repository root as the image's WORKDIR."""
    command = _container()["livenessProbe"]["exec"]["command"]
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:], *extra], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=10
    )


def _waiting_on_a_lock(observer: psycopg.Connection) -> bool:
    """Whether a session of this database waits for a lock (beat's pass: no other runs there). Asked on a
    connection in autocommit: within one transaction pg_stat_activity is read once and kept."""
    row = observer.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return row[0] > 0


def _start_beat(tmp_path, broker_url: str) -> tuple[subprocess.Popen, dict[str, str], os.PathLike]:
    """The Deployment's beat command on the test database; (process, its environment, its log)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_BROKER_CONNECTION_TIMEOUT": "1",
        "CELERY_BEAT_HEARTBEAT_FILE": str(tmp_path / "beat.heartbeat"),
        "VAR_DIR": str(tmp_path),
    }
    command = _container()["command"]
    assert command[0] == "celery"
    log = tmp_path / "beat.log"
    beat = subprocess.Popen(
        [sys.executable, "-m", *command, "--loglevel=DEBUG"],
        cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return beat, env, log


def _stop(beat: subprocess.Popen) -> None:
    stop_group(beat, timeout=60)


@pytest.mark.django_db(transaction=True)
def test_beat_heartbeat_goes_stale_while_its_loop_waits_on_a_database_lock(tmp_path):
    heartbeat = tmp_path / "beat.heartbeat"
    beat, env, log = _start_beat(tmp_path, "memory://")  # nothing this test's beat sends may reach a real queue
    lock = psycopg.connect(database_url())
    observer = psycopg.connect(database_url(), autocommit=True)
    try:
        wait_for(heartbeat.exists, 120, "beat touched no heartbeat", log)
        assert _probe(env).returncode == 0
        assert len(touches_during(heartbeat, TOUCH_INTERVAL + 3, enough=2)) >= 2  # each pass touches it

        # A pass reads the schedule's change marker: behind the lock it waits, and beat stays Running.
        lock.execute("LOCK TABLE django_celery_beat_periodictasks IN ACCESS EXCLUSIVE MODE")
        wait_for(lambda: _waiting_on_a_lock(observer), 4 * TOUCH_INTERVAL, "beat's pass never reached the lock", log)
        waiting_since = time.time()
        time.sleep(TOUCH_INTERVAL * 1.5)
        assert beat.poll() is None
        assert heartbeat.stat().st_mtime <= waiting_since
        stale = _probe(env, "--max-age", str(TOUCH_INTERVAL))
        assert stale.returncode == 1 and "last touched" in stale.stderr

        # The lock released, the pass completes and the loop touches the file again.
        lock.rollback()
        wait_for(lambda: heartbeat.stat().st_mtime > waiting_since, 4 * TOUCH_INTERVAL, "no touch after", log)
        assert _probe(env).returncode == 0
    finally:
        lock.close()
        observer.close()
        _stop(beat)


@pytest.mark.django_db(transaction=True)
def test_beat_waiting_for_its_broker_keeps_its_heartbeat(tmp_path):
    """An entry falls due while RabbitMQ is away: beat's first connection retries for minutes, outside its
    loop's passes. Restarted as dead, beat would drop the entry (marked run before it is sent)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="liveness test", task="tests.never_sent", interval=every_second)
    heartbeat = tmp_path / "beat.heartbeat"
    beat, env, log = _start_beat(tmp_path, f"amqp://guest:guest@127.0.0.1:{closed_port()}//")
    try:
        wait_for(lambda: "beat: Connection error" in log.read_text(), 120, "beat never tried the broker", log)
        touches = touches_during(heartbeat, 2 * TOUCH_INTERVAL)
        assert len(touches) >= 4 and max(b - a for a, b in itertools.pairwise(touches)) < 5, touches
        assert beat.poll() is None
        assert _probe(env, "--max-age", "5").returncode == 0
    finally:
        _stop(beat)
