"""A `manage.py migrate` run by hand, outside `make run` (which runs under umask 077), created the embedded
runtime folder and SQLite database under the user's umask: 755 and 644 under the usual 022, so any local user
could read every patient. The folder and database it creates are now its owner's alone, the database's WAL
files with them (SQLite gives them the database's mode)."""

import os
import stat
import subprocess
import sys

from tests.helpers import REPO_ROOT

DATABASE = ("controlplane.sqlite3", "controlplane.sqlite3-wal", "controlplane.sqlite3-shm")
# Django's own SQLite connection (WAL mode) writing, as migrate's first statement does, kept open while the
# modes are read (the -wal and -shm files go away when the last connection closes).
OPEN_AND_READ_MODES = (
    "import os, sys, django; django.setup(); from django.db import connection;"
    " connection.cursor().execute('create table probe (x integer)'); var = os.environ['VAR_DIR'];"
    " print(repr({n: os.stat(os.path.join(var, n)).st_mode & 0o777 for n in os.listdir(var)"
    " if n.startswith('controlplane.sqlite3')}))"
)


def _environment(var) -> dict:
    keep = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    return {**keep, "VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "controlplane.settings"}


def test_a_migrate_by_hand_creates_a_private_folder_and_database(tmp_path):
    var = tmp_path / "var"
    os.umask(old := os.umask(0o022))  # the usual umask, whatever the test runner's
    try:
        result = subprocess.run([sys.executable, "-c", OPEN_AND_READ_MODES], cwd=REPO_ROOT, env=_environment(var),
                                capture_output=True, text=True, timeout=120)  # fmt: skip
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    modes = eval(result.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr of a dict of ints
    assert set(DATABASE) <= set(modes), modes
    assert {name: mode & 0o077 for name, mode in modes.items()} == dict.fromkeys(modes, 0), modes
    assert stat.S_IMODE(var.stat().st_mode) == 0o700


def test_an_existing_database_is_left_as_it_is(tmp_path):
    """Only a file it creates is the settings' to choose: an owner's own mode (say a group-readable backup set
    up on purpose) is theirs; `make run` closes one an earlier run left open."""
    var = tmp_path / "var"
    var.mkdir(mode=0o750)
    (var / "controlplane.sqlite3").write_bytes(b"")
    (var / "controlplane.sqlite3").chmod(0o640)
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=REPO_ROOT,
                            env=_environment(var), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((var / "controlplane.sqlite3").stat().st_mode) == 0o640
    assert stat.S_IMODE(var.stat().st_mode) & 0o777 == 0o750


def test_a_command_that_never_connects_creates_no_database(tmp_path):
    """The image's `collectstatic` runs as root at build time with no DATABASE_URL: a database file created when
    settings load was an empty, root-owned 0600 file the container's user could not open (every request failed
    'unable to open database file'). The file is made on the first connection only."""
    var = tmp_path / "var"
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=REPO_ROOT,
                            env=_environment(var), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not (var / "controlplane.sqlite3").exists()
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
