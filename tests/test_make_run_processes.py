"""`make run`'s processes: they stop with a terminal that closes (or an SSH session that drops), and a second
`make run` on the same runtime folder starts none. A copy of the checkout's Makefile and process manager, the
real venv, stand-ins for the set-up steps and a Procfile of two sleeps."""

import os
import pty
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import REPO_ROOT, VENV_BIN, start_make_run, stop_group, wait_for

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

REQUIREMENTS = ["requirements.txt", "requirements-dev.txt", "requirements-models.txt"]
FRONTEND = ["frontend/package.json", "frontend/package-lock.json", "frontend/index.html", "frontend/vite.config.ts",
            "frontend/tsconfig.json"]  # fmt: skip


def _checksum(paths: list[Path]) -> bytes:
    content = b"".join(path.read_bytes() for path in paths)
    return subprocess.run(["cksum"], input=content, capture_output=True, check=True).stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    if (REPO_ROOT / "scripts").is_dir():
        shutil.copytree(REPO_ROOT / "scripts", tmp_path / "scripts")
    (tmp_path / "manage.py").write_text("")  # migrate and seed_demo: nothing to do here
    (tmp_path / "Procfile").write_text("one: exec sleep 300\ntwo: exec sleep 301\n")
    for name in REQUIREMENTS + FRONTEND:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"{name}\n")
    # The real venv's interpreter and packages, with a stamp of its own: nothing is installed.
    venv = tmp_path / ".venv"
    venv.mkdir()
    for part in ("bin", "lib"):
        (venv / part).symlink_to(VENV_BIN.parent / part)
    shutil.copy(VENV_BIN.parent / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / ".installed").write_bytes(_checksum([tmp_path / name for name in REQUIREMENTS]))
    (tmp_path / "frontend/node_modules").mkdir()
    (tmp_path / "frontend/node_modules/.installed").write_bytes(_checksum([tmp_path / name for name in FRONTEND[:2]]))
    (tmp_path / "static/dashboard").mkdir(parents=True)
    (tmp_path / "static/dashboard/index.html").write_text("built\n")
    old = time.time() - 3600
    for name in FRONTEND:
        os.utime(tmp_path / name, (old, old))
    return tmp_path


def _started_pids(log: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"(?:one|two)\.1 started \(pid=(\d+)\)", log.read_text())]


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _make_run(checkout: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return start_make_run(checkout, out)


def _stop(make: subprocess.Popen, pids: list[int]) -> None:
    for pid in pids:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
    if make.poll() is None:
        stop_group(make, signal.SIGKILL)


def test_a_hang_up_stops_the_procfile_processes(checkout: Path) -> None:
    log = checkout / "run.log"
    make = _make_run(checkout, log)
    pids: list[int] = []
    try:
        wait_for(lambda: len(_started_pids(log)) == 2, 60, "the Procfile's processes to start", log)
        pids = _started_pids(log)
        os.killpg(make.pid, signal.SIGHUP)  # the terminal closing: its session's foreground group hangs up
        make.wait(timeout=30)
        wait_for(lambda: not any(_running(pid) for pid in pids), 30, "the processes to stop after the hang-up", log)
    finally:
        _stop(make, pids)


def test_a_second_make_run_on_the_same_var_dir_starts_nothing(checkout: Path) -> None:
    first_log, second_log = checkout / "first.log", checkout / "second.log"
    first = _make_run(checkout, first_log)
    second: subprocess.Popen | None = None
    pids: list[int] = []
    try:
        wait_for(lambda: len(_started_pids(first_log)) == 2, 60, "the first run's processes to start", first_log)
        pids = _started_pids(first_log)
        second = _make_run(checkout, second_log)  # other ports, as the port-in-use message suggests
        wait_for(lambda: second.poll() is not None, 60, "the second run to stop", second_log)
        assert second.returncode != 0
        assert f"Another make run is using {checkout / 'var'}" in second_log.read_text()
        assert _started_pids(second_log) == []  # no second beat on the same database
        assert all(_running(pid) for pid in pids)  # the first run goes on
    finally:
        _stop(first, pids)
        if second is not None:
            _stop(second, _started_pids(second_log))


def test_a_terminal_gone_without_a_hang_up_stops_the_procfile_processes(checkout: Path) -> None:
    # A process that writes a line every moment, so honcho writes to the terminal after it is gone.
    (checkout / "Procfile").write_text(
        "one: exec sleep 300\ntwo: exec sh -c 'while :; do echo tick; sleep 0.2; done'\n"
    )
    master, terminal = pty.openpty()
    make = start_make_run(checkout, terminal)
    os.close(terminal)
    seen = b""
    pids: list[int] = []
    try:
        while len(pids) < 2:
            seen += os.read(master, 65536)
            pids = [int(pid) for pid in re.findall(rb"(?:one|two)\.1 started \(pid=(\d+)\)", seen)]
        os.close(master)  # the terminal window closes: every later write there fails (EIO)
        master = -1
        make.wait(timeout=30)
        log = checkout / "seen.log"
        log.write_bytes(seen)
        wait_for(lambda: not any(_running(pid) for pid in pids), 30, "the processes to stop", log)
    finally:
        if master != -1:
            os.close(master)
        _stop(make, pids)
