from __future__ import annotations

import pytest

from apps.caching.stack import CacheStack
from tests.caching.support import make_stack
from tests.helpers import free_port, start_redis


@pytest.fixture(autouse=True)
def _tasks_run_here():
    """Tasks sent on commit (a clear's delete of its L3 rows) run in this process at once, their errors kept in
    their result as a worker's would be: none is left on the broker for a later test's worker to run."""
    from controlplane.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def stack() -> CacheStack:
    return make_stack()


@pytest.fixture
def own_redis():
    """A Redis server of the test's own, on its own port, that the test may stop (and start again)."""
    port = free_port()
    servers = [start_redis(port)]
    yield f"redis://127.0.0.1:{port}/0", servers
    for process in servers:
        process.kill()
        process.wait()
