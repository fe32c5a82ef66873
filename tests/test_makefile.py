"""`make run`'s set-up steps, on a copy of the Makefile with stand-ins for python and npm: what a fresh
clone or a branch switch (files dated anew, content unchanged) rebuilds, and what a real change does."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, free_port

REQUIREMENTS = ["requirements.txt", "requirements-dev.txt", "requirements-models.txt"]
PACKAGE = ["frontend/package.json", "frontend/package-lock.json"]
STAMPS = {".venv/.installed": REQUIREMENTS, "frontend/node_modules/.installed": PACKAGE}

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    for name in REQUIREMENTS + PACKAGE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"{name} pinned\n")
    for stamp, sources in STAMPS.items():
        (tmp_path / stamp).parent.mkdir(parents=True, exist_ok=True)
        content = b"".join((tmp_path / s).read_bytes() for s in sources)
        checksum = subprocess.run(["cksum"], input=content, capture_output=True, check=True).stdout
        (tmp_path / stamp).write_bytes(checksum)
    # Stand-ins that record being called: a real install would need the network and minutes.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("python", "npm"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/{tool}.calls"\n')
        (bin_dir / tool).chmod(0o755)
    (bin_dir / "python").write_text(
        f'#!/bin/sh\necho "$*" >> "{tmp_path}/python.calls"\nmkdir -p .venv/bin\n'
        'printf "#!/bin/sh\\n" > .venv/bin/pip && chmod +x .venv/bin/pip\n'
    )
    # The checkout's files are newer than the stamps, as after `git clone` beside an existing install.
    old = time.time() - 3600
    for stamp in STAMPS:
        os.utime(tmp_path / stamp, (old, old))
    return tmp_path


def make(checkout: Path, *targets: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{checkout / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["make", f"PYTHON={checkout / 'bin' / 'python'}", *targets],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_files_dated_anew_with_the_same_content_reinstall_nothing(checkout: Path) -> None:
    done = make(checkout, "install", "frontend/node_modules/.installed")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (checkout / "python.calls").exists()
    assert not (checkout / "npm.calls").exists()  # npm ci would have emptied node_modules first


def test_a_changed_lockfile_reinstalls_and_records_its_hash(checkout: Path) -> None:
    (checkout / "frontend/package-lock.json").write_text("a new pin\n")
    done = make(checkout, "frontend/node_modules/.installed")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (checkout / "npm.calls").read_text().startswith("ci ")
    assert not (checkout / "python.calls").exists()
    again = make(checkout, "frontend/node_modules/.installed")
    assert again.returncode == 0 and (checkout / "npm.calls").read_text().count("ci ") == 1


def test_changed_requirements_reinstall_the_virtualenv(checkout: Path) -> None:
    (checkout / "requirements.txt").write_text("Django==9.9\n")
    done = make(checkout, "install")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (checkout / "python.calls").read_text().startswith("-m venv .venv")
    again = make(checkout, "install")
    assert again.returncode == 0 and (checkout / "python.calls").read_text().count("-m venv") == 1


def test_a_port_in_use_stops_make_run_before_anything_is_set_up(checkout: Path) -> None:
    (checkout / "frontend/package.json").write_text("changed\n")  # an install would be due
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = make(checkout, "run", f"PORT={port}", f"LIVE_PORT={free_port()}")
    assert done.returncode != 0
    assert f"Port {port} on 127.0.0.1 is in use" in done.stderr
    assert "make run PORT=9000 LIVE_PORT=9001" in done.stderr
    assert not (checkout / "npm.calls").exists()
