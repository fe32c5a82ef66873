"""`make run`'s stop reports a graceful stop as one: uvicorn (the Procfile's `live`) ends its graceful shutdown by
raising again the SIGTERM that began it, and honcho printed `live.1 stopped (rc=-15)` at every Ctrl-C, as if it
had failed, while the others stopped with 0. A process ended by a SIGTERM the manager did not send is still
reported as it ended. Real processes: the process manager of scripts/start_processes.py, the Procfile's own
live command (uvicorn on a free port)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from apps.core.ports import free_port
from tests.helpers import REPO_ROOT, VENV_BIN, stop_group, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX signals")


def _procfile_line(name: str) -> str:
    lines = (REPO_ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)[name]


def _run(tmp_path: Path, procfile: str) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "Procfile").write_text(procfile)
    log = tmp_path / "run.log"
    env = {**os.environ, "CP_HOST": "127.0.0.1", "LIVE_PORT": str(free_port()), "VAR_DIR": str(tmp_path / "var")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1")
    env.pop("MAKEFLAGS", None)
    command = [sys.executable, "scripts/start_processes.py", "-f", str(tmp_path / "Procfile"), "-d", str(REPO_ROOT)]
    with open(log, "w") as out:
        manager = subprocess.Popen(
            [*command, "start"], cwd=REPO_ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    return manager, log


def test_a_ctrl_c_reports_the_live_server_s_graceful_stop_as_rc_0(tmp_path):
    manager, log = _run(tmp_path, f"live: {_procfile_line('live')}\n")
    try:
        wait_for(lambda: "Uvicorn running on" in log.read_text() or manager.poll() is not None, 120, "uvicorn", log)
        assert manager.poll() is None, log.read_text()
        manager.send_signal(signal.SIGINT)  # the terminal's Ctrl-C, to the manager
        manager.wait(timeout=60)
    finally:
        stop_group(manager, signal.SIGKILL)  # whatever of the run is left, its processes included
    text = log.read_text()
    assert "sending SIGTERM to live.1" in text, text
    assert "live.1 stopped (rc=0)" in text, text  # was rc=-15: uvicorn raises the SIGTERM again once stopped
    assert "Finished server process" in text, text  # its graceful shutdown ran to its end


def test_a_sigterm_the_manager_did_not_send_is_still_reported(tmp_path):
    """A process that dies of a SIGTERM from elsewhere (nothing asked it to stop) is not made a success."""
    manager, log = _run(tmp_path, "killed: kill -TERM $$\n")
    try:
        manager.wait(timeout=60)  # its end stops the run
    finally:
        stop_group(manager, signal.SIGKILL)  # whatever of the run is left, its processes included
    text = log.read_text()
    assert "killed.1 stopped (rc=-15)" in text, text
    assert manager.returncode != 0, text
