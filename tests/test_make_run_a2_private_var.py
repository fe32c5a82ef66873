"""`make run`'s runtime folder and its SQLite database (patients' names, MRNs, birth dates) are readable by
their owner alone: they were 755 and 644, so any local user could read every patient. Through the process
manager as `make run` uses it (its set-up steps run under it), a stand-in for migrate creating the database in
WAL mode as Django's SQLite backend does."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT

DATABASE = ("controlplane.sqlite3", "controlplane.sqlite3-wal", "controlplane.sqlite3-shm")
# The database created and written in WAL mode, the modes of its three files noted while it is still open.
MIGRATE = (
    "import os, sqlite3, sys; var = sys.argv[1]; db = sqlite3.connect(os.path.join(var, 'controlplane.sqlite3'));"
    " db.execute('pragma journal_mode=wal'); db.execute('create table patient(mrn)'); db.commit();"
    " modes = {n: oct(os.stat(os.path.join(var, n)).st_mode & 0o777) for n in sorted(os.listdir(var))};"
    " open(os.path.join(os.path.dirname(var), 'modes'), 'w').write(repr(modes))"
)


def _run(tmp_path: Path, *steps: str) -> subprocess.CompletedProcess:
    arguments = [arg for step in steps for arg in ("--then", step)]
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "start_processes.py"), *arguments],
        cwd=tmp_path, env={"PATH": os.environ["PATH"], "VAR_DIR": str(tmp_path / "var")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _open_bits(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) & 0o077


def test_the_runtime_folder_and_the_database_a_run_creates_are_the_owners_alone(tmp_path):
    os.umask(old := os.umask(0o022))  # the usual umask, whatever the test runner's
    try:
        result = _run(tmp_path, f'{sys.executable} -c "{MIGRATE}" {tmp_path / "var"}')
    finally:
        os.umask(old)
    assert result.returncode == 0, result.stderr
    modes = eval((tmp_path / "modes").read_text())  # noqa: S307 - our own repr of a dict of strings
    assert set(DATABASE) <= set(modes), modes
    assert all(int(mode, 8) & 0o077 == 0 for mode in modes.values()), modes
    assert _open_bits(tmp_path / "var") == 0


def test_a_folder_and_database_an_earlier_run_left_readable_are_closed(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    var.chmod(0o755)
    for name in DATABASE:
        (var / name).write_bytes(b"")
        (var / name).chmod(0o644)
    result = _run(tmp_path, "true")
    assert result.returncode == 0, result.stderr
    assert _open_bits(var) == 0
    assert {name: _open_bits(var / name) for name in DATABASE} == dict.fromkeys(DATABASE, 0)
