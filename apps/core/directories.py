"""The folders settings.py creates at start-up (VAR_DIR, PROMETHEUS_MULTIPROC_DIR, STATIC_ROOT). Plain Python,
no Django: safe at settings time."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def settings_directory(path: Path, variable: str) -> Path:
    """`path`, created with its parents if missing; a start-up error naming `variable` when it cannot be a
    folder. A file at the path stopped every process with a FileExistsError traceback naming no variable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
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
