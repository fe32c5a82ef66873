"""Gunicorn hooks: Prometheus multiprocess metrics must forget a worker that has exited."""


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
