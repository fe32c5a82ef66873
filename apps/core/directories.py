"""The folders settings.py creates at start-up (VAR_DIR, PROMETHEUS_MULTIPROC_DIR, STATIC_ROOT). Plain Python,
no Django: safe at settings time."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def settings_directory(path: Path, variable: str, *, private: bool = False) -> Path:
    """`path`, created with its parents if missing; a start-up error naming `variable` when it cannot be a
    folder. A file at the path stopped every process with a FileExistsError traceback naming no variable.
    `private`: a folder created here is its owner's alone, whatever the umask (VAR_DIR holds the database)."""
    try:
        path.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
    except FileExistsError:
        raise ImproperlyConfigured(
            f"The environment variable {variable} must name a folder; {path} is a file (or under one)."
        ) from None
    except OSError as exc:
        raise ImproperlyConfigured(
            f"The environment variable {variable} must name a folder the product can create: {path}: "
            f"{exc.strerror or exc}."
        ) from None
    return path


def private_database_file(path: Path) -> None:
    """Creates a SQLite database empty and readable by its owner alone if it is missing (SQLite takes an empty
    file for a new database and gives its -wal, -shm and -journal files the database's mode; see
    apps.core.sqlite_private). An existing file is left as it is (`make run` closes one an earlier run left
    open); where it cannot be made, SQLite says why on connect."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
