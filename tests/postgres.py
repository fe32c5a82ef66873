"""PostgreSQL servers of a test's own (initdb, a free port, a folder that goes with them), for what the suite's
server cannot show: a restart under load, a preloaded library, a streaming replica."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from apps.core.ports import free_port

_BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
PG_BIN = Path(_BINARIES[-1]) if _BINARIES else None  # the newest server installed


def as_postgres(*command: str) -> subprocess.CompletedProcess:
    """PostgreSQL refuses to run as root: run its tools as the postgres user when we are root."""
    if os.geteuid() == 0:
        return subprocess.run(["su", "postgres", "-c", " ".join(command)], capture_output=True, text=True, timeout=120)
    return subprocess.run(list(command), capture_output=True, text=True, timeout=120)


@dataclass
class PrivatePostgres:
    port: int
    folder: Path  # the cluster (folder/db), its log and its socket
    pg_ctl: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def connect_kwargs(self) -> dict:
        """psycopg.connect's arguments, user left to the caller."""
        return {"host": "127.0.0.1", "port": self.port, "dbname": "postgres"}

    def restart(self) -> None:
        result = as_postgres(*self.pg_ctl, "-m", "fast", "restart")
        assert result.returncode == 0, result.stderr


@contextmanager
def private_postgres(*settings: str, replica_of: PrivatePostgres | None = None) -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own on a free port (fsync off, trust, user postgres), `settings`
    ("name=value") added to its command line; with `replica_of`, a streaming replica of that server
    (pg_basebackup) instead of a new cluster. Always stopped, and its folder removed, on the way out."""
    assert PG_BIN is not None, "PostgreSQL server binaries are needed (apt-get install postgresql)"
    folder = Path(tempfile.mkdtemp(prefix="pg-private-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        data, log, port = folder / "db", folder / "log", free_port()
        if replica_of is None:
            made = as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        else:
            made = as_postgres(str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(replica_of.port),
                               "-U", "postgres", "-D", str(data), "-R", "-X", "stream")  # fmt: skip
        assert made.returncode == 0, made.stderr
        server_settings = ("listen_addresses=127.0.0.1", "fsync=off", *settings)
        options = f"-p {port} -k {folder} " + " ".join(f"-c {setting}" for setting in server_settings)
        pg_ctl = (str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", f"'{options}'", "-l", str(log), "-w")
        started = as_postgres(*pg_ctl, "start")
        try:
            assert started.returncode == 0, started.stderr + (log.read_text() if log.exists() else "")
            yield PrivatePostgres(port, folder, pg_ctl)
        finally:
            as_postgres(*pg_ctl, "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
