"""`make run`'s process manager says how its processes stopped: after a Ctrl-C (130) or SIGTERM (143) that each
process honoured, that status; when one outlasted its graceful shutdown and needed SIGQUIT or SIGKILL (a Celery
worker past its warm shutdown, its running task cut off), it is named and the status is 1. It was 130 or 143
either way. Stand-in processes under the checkout's scripts/start_processes.py."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.helpers import REPO_ROOT, embedded_env, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals and process groups")

# `graceful` ends on SIGTERM, `stubborn` only on SIGQUIT (Celery's cold shutdown), `deaf` on nothing it can catch.
SERVER = r"""
import os, signal, sys
mode = sys.argv[1]
def on_signal(signum, frame):
    if (signum, mode) in ((signal.SIGTERM, "graceful"), (signal.SIGQUIT, "stubborn")):
        os._exit(0)
for signum in (signal.SIGTERM, signal.SIGQUIT):
    signal.signal(signum, signal.SIG_IGN if mode == "deaf" else on_signal)
print("ready", flush=True)
while True:
    signal.pause()
"""


def _start(folder: Path, procfile: str, **extra: str) -> tuple[subprocess.Popen, Path]:
    (folder / "server.py").write_text(SERVER)
    (folder / "Procfile").write_text(procfile)
    log = folder / "run.log"
    with open(log, "w") as out:
        manager = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "scripts" / "start_processes.py"), "-f", "Procfile", "start"],
            cwd=folder, env=embedded_env(folder / "var", **extra), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return manager, log


def _ready(log: Path, count: int) -> bool:
    return log.read_text().count("| ready") >= count


def _teardown(manager: subprocess.Popen) -> None:
    """Whatever a failed test left: the manager's processes (each in a session of its own) and the manager."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(manager.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
    if manager.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(manager.pid, signal.SIGKILL)
        manager.wait()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_graceful_stop_ends_with_the_signals_status(tmp_path, signum, status):
    manager, log = _start(tmp_path, "api: python server.py graceful\nbeat: python server.py graceful\n")
    try:
        wait_for(lambda: _ready(log, 2), 120, "the processes to start", log)
        os.kill(manager.pid, signum)
        assert manager.wait(timeout=120) == status, log.read_text()
        assert "did not stop gracefully" not in log.read_text()
    finally:
        _teardown(manager)


@pytest.mark.parametrize("mode", ["stubborn", "deaf"])
def test_a_process_that_needed_sigquit_or_sigkill_is_named_and_the_status_is_1(tmp_path, mode):
    # No grace: SIGQUIT right after SIGTERM, SIGKILL right after that; neither stand-in ends on SIGTERM.
    manager, log = _start(
        tmp_path, f"worker: python server.py {mode}\n", RUN_STOP_GRACE_SECONDS="0", RUN_QUIT_GRACE_SECONDS="0"
    )
    try:
        wait_for(lambda: _ready(log, 1), 120, "the process to start", log)
        os.kill(manager.pid, signal.SIGTERM)
        assert manager.wait(timeout=120) == 1, log.read_text()
        needed = "SIGKILL" if mode == "deaf" else "SIG"  # a stubborn one may be gone only by the SIGKILL's time
        assert f"worker.1 did not stop gracefully: it needed {needed}" in log.read_text(), log.read_text()
    finally:
        _teardown(manager)
