"""`make run` stops each process through its own graceful shutdown (Ctrl-C, or a hang-up): SIGTERM to each
server alone (never its group: a Celery worker's pool children finish their tasks, told by their master), SIGQUIT
(Celery's cold shutdown, which re-queues) only after a grace period, then SIGKILL; a second Ctrl-C hurries. Real
processes under the checkout's Makefile and process manager: stand-in servers that log every signal they get,
each with a child in its own process group, as a Celery worker's pool children are."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import start_make_run, stop_group, wait_for
from tests.test_make_run_processes import checkout  # noqa: F401 - the fixture: a copy of the checkout

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals and process groups")

# A server: logs each signal it gets to NAME.signals; `graceful` stops on SIGTERM, `stubborn` only on SIGQUIT
# (a Celery worker busy with a long task), `deaf` on nothing catchable. Its child (a pool process) logs what it
# gets to NAME.child and ends when its parent tells it (SIGUSR1), as a pool child is told by its master.
SERVER = r"""
import os, signal, subprocess, sys, time
name, mode = sys.argv[1], sys.argv[2]
log = open(name + ".signals", "a", buffering=1)
child = subprocess.Popen([sys.executable, "child.py", name + ".child"])
while not (os.path.exists(name + ".child") and "ready" in open(name + ".child").read()):
    time.sleep(0.05)

def stop():
    child.send_signal(signal.SIGUSR1)
    child.wait()
    log.write("stopped\n")
    os._exit(0)

def on_signal(signum, frame):
    log.write(signal.Signals(signum).name + "\n")
    if (signum == signal.SIGTERM and mode == "graceful") or (signum == signal.SIGQUIT and mode == "stubborn"):
        stop()

for signum in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, on_signal)
log.write("ready\n")
print(name, "ready", flush=True)
while True:
    signal.pause()
"""
CHILD = r"""
import signal, sys
log = open(sys.argv[1], "a", buffering=1)
def on_signal(signum, frame):
    log.write(signal.Signals(signum).name + "\n")
    if signum == signal.SIGUSR1:
        sys.exit(0)
for signum in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(signum, on_signal)
log.write("ready\n")
while True:
    signal.pause()
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _start(folder: Path, procfile: str, **env_extra: str) -> tuple[subprocess.Popen, Path]:
    (folder / "server.py").write_text(SERVER)
    (folder / "child.py").write_text(CHILD)
    (folder / "Procfile").write_text(procfile)  # no `exec`: as the real Procfile, each runs under `sh -c`
    log = folder / "run.log"
    with open(log, "w") as out:
        return start_make_run(folder, out, PYTHONUNBUFFERED="1", **env_extra), log


def _ready(folder: Path, *names: str) -> bool:
    return all("ready" in _lines(folder / f"{name}.signals") for name in names)


def _ctrl_c(make: subprocess.Popen) -> None:
    os.killpg(make.pid, signal.SIGINT)  # the terminal's Ctrl-C: its foreground group (make and the manager)


def _leftovers(folder: Path) -> list[psutil.Process]:
    """Stand-ins still running from this folder (server.py or child.py), to end in teardown."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if process.info["cwd"] == str(folder.resolve()) and any(
                part.endswith(("server.py", "child.py")) for part in process.info["cmdline"] or []
            ):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _teardown(make: subprocess.Popen, folder: Path) -> None:
    if make.poll() is None:
        stop_group(make, signal.SIGKILL)
    for process in _leftovers(folder):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def test_ctrl_c_stops_each_server_gracefully_and_leaves_its_children_to_it(checkout: Path) -> None:  # noqa: F811
    make, log = _start(checkout, "one: python server.py one graceful\ntwo: python server.py two graceful\n")
    try:
        wait_for(lambda: _ready(checkout, "one", "two"), 120, "the servers to start", log)
        _ctrl_c(make)
        make.wait(timeout=120)
        for name in ("one", "two"):
            assert _lines(checkout / f"{name}.signals") == ["ready", "SIGTERM", "stopped"], log.read_text()
            # The child heard from its parent only: no SIGTERM to the group, no SIGKILL.
            assert _lines(checkout / f"{name}.child") == ["ready", "SIGUSR1"], log.read_text()
        assert _leftovers(checkout) == []
    finally:
        _teardown(make, checkout)


def test_a_server_busy_past_sigterm_is_waited_for_and_a_second_ctrl_c_sends_sigquit(checkout: Path) -> None:  # noqa: F811
    """One server ends at once (beat), the other keeps running after SIGTERM (a worker finishing a long task): it is
    not killed when the first ends, and with a grace period longer than the test, only a second Ctrl-C moves it on
    to SIGQUIT (Celery's cold shutdown), on which it ends by itself, its child told by it."""
    make, log = _start(
        checkout, "quick: python server.py quick graceful\nbusy: python server.py busy stubborn\n",
        RUN_STOP_GRACE_SECONDS="3600",
    )  # fmt: skip
    try:
        wait_for(lambda: _ready(checkout, "quick", "busy"), 120, "the servers to start", log)
        _ctrl_c(make)
        wait_for(lambda: "stopped" in _lines(checkout / "quick.signals"), 60, "quick to stop", log)
        wait_for(lambda: "SIGTERM" in _lines(checkout / "busy.signals"), 60, "busy to get SIGTERM", log)
        wait_for(lambda: "quick.1 stopped" in log.read_text(), 60, "the manager to see quick stop", log)
        # honcho's own stop sent SIGKILL 5 s after the first process ended; this one must not. Well past that:
        time.sleep(8)
        assert make.poll() is None and _lines(checkout / "busy.signals") == ["ready", "SIGTERM"], log.read_text()
        _ctrl_c(make)  # the second Ctrl-C: hurry
        make.wait(timeout=120)
        assert _lines(checkout / "busy.signals") == ["ready", "SIGTERM", "SIGQUIT", "stopped"], log.read_text()
        assert _lines(checkout / "busy.child") == ["ready", "SIGUSR1"], log.read_text()
    finally:
        _teardown(make, checkout)


def test_a_server_deaf_to_sigterm_and_sigquit_gets_sigquit_after_the_grace_period_then_sigkill(
    checkout: Path,  # noqa: F811
) -> None:
    # Graces of seconds, not one: a server descheduled past a 1 s grace on a loaded host gets SIGQUIT before it
    # has written down SIGTERM (Python then runs the lower-numbered handler first), or SIGKILL before SIGQUIT.
    make, log = _start(
        checkout, "deaf: python server.py deaf deaf\n", RUN_STOP_GRACE_SECONDS="5", RUN_QUIT_GRACE_SECONDS="5"
    )
    try:
        wait_for(lambda: _ready(checkout, "deaf"), 120, "the server to start", log)
        _ctrl_c(make)
        make.wait(timeout=120)
        assert _lines(checkout / "deaf.signals") == ["ready", "SIGTERM", "SIGQUIT"], log.read_text()
        wait_for(lambda: _leftovers(checkout) == [], 60, "the group to end with its SIGKILL", log)
        assert "sending SIGKILL to deaf" in log.read_text()
    finally:
        _teardown(make, checkout)


def test_the_real_procfile_runs_each_server_in_the_place_of_its_shell() -> None:
    """Signals go to the pid honcho started: each Procfile command must be that process, not a shell above it
    (dash stays a command's parent; SIGTERM to it alone would orphan the server, told nothing)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    try:
        from start_processes import _exec
    finally:
        sys.path.pop(0)
    procfile = (Path(__file__).resolve().parent.parent / "Procfile").read_text().splitlines()
    commands = dict(line.split(": ", 1) for line in procfile if ": " in line)
    assert all(_exec(command).startswith("exec ") for command in commands.values())
    assert "--timeout-graceful-shutdown 20" in commands["live"]  # uvicorn ends its connections within the grace
    assert _exec("a && b") == "a && b" and _exec("exec sleep 1") == "exec sleep 1"
