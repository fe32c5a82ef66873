"""The live server (uvicorn, as the Procfile starts it) writes no access log: under `make run` it serves the whole
API, and a request's path and query carry patient names and ids. Configuring the `uvicorn` logger gave its
`uvicorn.access` child back propagation, and uvicorn logs access whenever that logger has a handler, so every
request was logged with its query despite `--no-access-log`. A real uvicorn process on a free port."""

import contextlib
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from apps.core.ports import free_port
from tests.helpers import REPO_ROOT, VENV_BIN, embedded_env, stop_group, wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="POSIX process groups")


def _procfile_live_command(port: int) -> str:
    lines = (REPO_ROOT / "Procfile").read_text().splitlines()
    command = dict(line.split(": ", 1) for line in lines if ": " in line)["live"]
    return command.replace("${CP_HOST}", "127.0.0.1").replace("${LIVE_PORT}", str(port))


def test_the_live_server_logs_no_request_path_or_query(tmp_path):
    port = free_port()
    env = embedded_env(tmp_path / "var", PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    log = tmp_path / "live.log"
    with open(log, "w") as out:
        live = subprocess.Popen(
            ["bash", "-c", f"exec {_procfile_live_command(port)}"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: "Uvicorn running on" in log.read_text() or live.poll() is not None, 120, "uvicorn", log)
        assert live.poll() is None, log.read_text()
        # Refused (no token, no database here), but answered: logged the old way.
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/patients/?family=Fischer", timeout=30)
    finally:
        stop_group(live)
    text = log.read_text()
    assert "Finished server process" in text, text  # everything it would log is in the file
    assert "Fischer" not in text and "/api/v1/patients" not in text, text
