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
    (bin_dir / "npm").write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/npm.calls"\n')
    (bin_dir / "npm").chmod(0o755)
    stand_in_python(bin_dir / "python", "3.11", calls=tmp_path / "python.calls")
    stand_in_python(tmp_path / ".venv/bin/python", "3.11")  # the venv an earlier run made
    # The checkout's files are newer than the stamps, as after `git clone` beside an existing install.
    old = time.time() - 3600
    for stamp in STAMPS:
        os.utime(tmp_path / stamp, (old, old))
    return tmp_path


def stand_in_python(path: Path, version: str, calls: Path | None = None) -> None:
    """A python that answers the Makefile's version checks as `version` and, given `calls`, records any other
    call and makes a venv of its own version (with a pip that does nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    script = (
        f'#!/bin/sh\ncase "$1" in -c) echo {version}; exit 0;; --version) echo "Python {version}.9"; exit 0;; esac\n'
    )
    if calls is not None:
        script += (
            f'echo "$*" >> "{calls}"\nmkdir -p .venv/bin\n'
            'printf "#!/bin/sh\\n" > .venv/bin/pip && chmod +x .venv/bin/pip\n'
            f'cp "$0" .venv/bin/python\n'
        )
    path.write_text(script)
    path.chmod(0o755)


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


def test_a_venv_whose_python_went_away_is_made_anew_though_its_stamp_matches(checkout: Path) -> None:
    (checkout / ".venv/bin/python").unlink()  # e.g. the Python it linked to was upgraded away
    (checkout / ".venv/lib").mkdir()
    done = make(checkout, "install")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (checkout / "python.calls").read_text().startswith("-m venv .venv")
    assert not (checkout / ".venv/lib").exists()  # made from scratch, not over the broken one
    again = make(checkout, "install")
    assert again.returncode == 0 and (checkout / "python.calls").read_text().count("-m venv") == 1


def test_a_python3_that_is_not_3_11_stops_the_install_with_what_to_do(checkout: Path) -> None:
    (checkout / "requirements.txt").write_text("Django==9.9\n")  # an install is due
    stand_in_python(checkout / "bin/python", "3.12", calls=checkout / "python.calls")
    done = make(checkout, "install")
    assert done.returncode != 0
    assert "Python 3.11 is needed" in done.stderr and "found: Python 3.12.9" in done.stderr
    assert "make run PYTHON=/path/to/python3.11" in done.stderr
    assert not (checkout / "python.calls").exists()  # no venv made, nothing fetched


def test_neither_python3_11_nor_python3_on_path_is_said_so(checkout: Path) -> None:
    (checkout / ".venv/bin/python").unlink()
    (checkout / "bin/python").unlink()
    for tool in ("cat", "cksum", "rm"):  # what the recipe uses besides python
        (checkout / "bin" / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": str(checkout / "bin")}  # no python3.11, no python3
    make_path = shutil.which("make")
    done = subprocess.run([make_path, "install"], cwd=checkout, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "found: neither python3.11 nor python3 on PATH" in done.stderr, done.stderr
