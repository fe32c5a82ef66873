"""Gunicorn hooks: Prometheus multiprocess metrics must forget a worker that has exited."""

import os
from pathlib import Path


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    # The arbiter never loads Django's settings, so it finds the folder the way settings.py does.
    default = Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var") / "prometheus"
    multiprocess.mark_process_dead(worker.pid, path=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(default))
