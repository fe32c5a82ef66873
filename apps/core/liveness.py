"""Heartbeat files for the Celery worker's and beat's liveness probes, and the probe itself.

`celery inspect ping` asks the worker through the broker, so a broker restart failed every worker's
liveness and Kubernetes killed the tasks they were running. The worker instead touches a file from its
own event loop (controlplane/celery.py), beat from each pass of its loop (apps/core/beat_liveness.py), and
the probe reads the file's age. Standard library only: the probe runs as `python -m apps.core.liveness
worker` (or `beat`) every period, without starting Django or Celery.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# Touched every TOUCH_INTERVAL seconds; the probe fails past MAX_AGE, which leaves room for a slow
# reconnect attempt (CELERY_BROKER_CONNECTION_TIMEOUT) and a busy loop without restarting a live worker.
TOUCH_INTERVAL = 10.0
MAX_AGE = 120.0

_FILE_VARIABLES = {"worker": "CELERY_WORKER_HEARTBEAT_FILE", "beat": "CELERY_BEAT_HEARTBEAT_FILE"}


def heartbeat_path(process: str = "worker") -> Path:
    """Where `process` keeps its heartbeat: under the temporary folder (/tmp, a volume in the pods) unless
    the variable names another file (tests run several processes on one host)."""
    default = Path(tempfile.gettempdir()) / f"controlplane-celery-{process}.heartbeat"
    return Path(os.environ.get(_FILE_VARIABLES[process], default))


def touch_heartbeat(path: Path) -> None:
    """Mark the process alive now."""
    path.touch()


def heartbeat_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since the last touch, or None when the process never touched it."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - modified


def heartbeat_is_fresh(path: Path, max_age: float = MAX_AGE) -> bool:
    age = heartbeat_age(path)
    return age is not None and age <= max_age


def main(argv: list[str] | None = None) -> int:
    """The probe: exit 0 when the heartbeat is fresh, 1 (saying why) when it is stale or missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("process", choices=sorted(_FILE_VARIABLES))
    parser.add_argument("--max-age", type=float, default=MAX_AGE, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    path = heartbeat_path(args.process)
    age = heartbeat_age(path)
    if age is None:
        print(f"{path} missing: the {args.process} never started its heartbeat", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"{path} last touched {age:.0f}s ago (limit {args.max_age:.0f}s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
