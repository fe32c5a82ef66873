"""A deleted plan takes its nightly schedules with it, however it was deleted (admin, API, a cascade); a
worker shutting down stops its running benchmark runs."""

import logging
import threading

from celery.signals import worker_ready, worker_shutting_down
from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.benchmarks.models import BenchmarkPlan

SHUTDOWN_WAIT_SECONDS = 5
logger = logging.getLogger(__name__)


@receiver(post_delete, sender=BenchmarkPlan)
def benchmark_plan_deleted(sender, instance: BenchmarkPlan, **kwargs) -> None:
    from apps.benchmarks.services import nightly_benchmark_forget

    nightly_benchmark_forget(plan_id=instance.pk)


@worker_shutting_down.connect
def benchmark_worker_shutting_down(sender=None, sig=None, how=None, exitcode=None, **kwargs) -> None:
    """A worker's shutdown (Ctrl-C, SIGTERM, a deploy) stops its running benchmark runs within a second,
    their samples so far recorded; a warm shutdown otherwise waited out the whole run. Waited for a few
    seconds at most: the shutdown must go on even if the database does not answer."""
    from apps.benchmarks.services import benchmark_runs_stop_for_shutdown_soon

    benchmark_runs_stop_for_shutdown_soon().join(timeout=SHUTDOWN_WAIT_SECONDS)


@worker_ready.connect
def benchmark_worker_ready(sender=None, **kwargs) -> None:
    """A worker starting (a restart after a SIGKILL or an OOM kill) fails this host's runs whose worker
    process is gone and removes their files at once, not at the checker's next round. In a thread: the
    worker's start does not wait for the database."""
    from apps.benchmarks.services import benchmark_runs_fail_orphaned

    def check() -> None:
        try:
            benchmark_runs_fail_orphaned()
        except Exception:
            logger.exception("checking for benchmark runs whose worker is gone failed")
        finally:
            from django.db import connection

            connection.close()

    threading.Thread(target=check, name="benchmark-orphans", daemon=True).start()
