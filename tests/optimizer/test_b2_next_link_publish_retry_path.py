"""run_step sends its chain's next link itself (cf1d621), but did so by a plain apply_async: Celery's tracer sends
a link through app.amqp._retry_publish (celery/app/trace.py), which retries that one message under the app's
publish retry policy, reconnecting and waiting between tries (a broker restarting: connection refused or reset),
before giving up. The link is now sent that way, as before cf1d621. A vhost that is gone (NotAllowed) is not
among the errors Celery retries, so the refusal still fails the run at once; the tracer's "Giving up refused
callback publish" warning shows the send went through the retry path.
Real RabbitMQ (this environment's vhost deleted), real PostgreSQL, Celery's own tracer with the step's chain."""

from __future__ import annotations

import logging
import uuid

import pytest
from celery.app.trace import build_tracer
from django.utils import timezone

from apps.optimizer import services, tasks
from apps.optimizer.models import OptimizationRun, OptimizationStep

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_next_link_is_sent_under_celerys_publish_retry(vhost_deleted, caplog):
    run = services.optimization_run_create(target="all")
    steps = {step.name: step.pk for step in run.steps.all()}
    OptimizationStep.objects.filter(pk=steps["database"]).update(
        status=OptimizationStep.Status.SUCCEEDED, finished_at=timezone.now()
    )
    links = [tasks.run_step.si(steps[n]) for n in ("caching", "model", "scaling")] + [tasks.finalize_run.si(run.pk)]
    trace = build_tracer(tasks.run_step.name, tasks.run_step, eager=False, app=tasks.run_step.app)
    task_id = str(uuid.uuid4())
    request = {"id": task_id, "args": [steps["database"]], "kwargs": {}, "chain": [dict(x) for x in reversed(links)],
               "delivery_info": {"exchange": "", "routing_key": "inference"}}  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="celery.app.amqp"):
        retval, info, *_ = trace(task_id, [steps["database"]], {}, request)
    assert (retval, info) == (OptimizationStep.Status.SUCCEEDED, None)
    retried = [r.getMessage() for r in caplog.records if r.name == "celery.app.amqp"]
    assert any("refused callback publish for 'optimizer.run_step'" in m for m in retried), retried  # was none
    run.refresh_from_db()
    assert run.status == OptimizationRun.Status.FAILED  # NotAllowed: not retried by Celery either
