"""`bench run --json` without --wait printed nothing on stdout (only "Run #N sent" on stderr): a script had no
run id to follow. Now it prints the queued run as JSON."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure
from controlplane.celery import app

pytestmark = pytest.mark.django_db(transaction=True)

REQUESTS = [{"name": "card", "method": "GET", "path": "/card", "weight": 1}]


def _drain() -> None:
    """Take the run's message off the real broker: no worker of a later test is to take it."""
    with app.connection_for_write() as broker:
        channel = broker.default_channel
        app.amqp.queues["benchmarks"](channel).declare()
        while channel.basic_get("benchmarks", no_ack=True) is not None:
            pass


def _plan(name: str) -> BenchmarkPlan:
    service, _ = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")
    return BenchmarkPlan.objects.create(name=name, service=service, requests=REQUESTS)


def test_json_without_wait_prints_the_queued_run():
    plan = _plan("queued json")
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("bench", "run", "queued json", "--json", stdout=out, stderr=err)
    finally:
        _drain()
    run = BenchmarkRun.objects.get(plan=plan)
    assert json.loads(out.getvalue()) == {"run": run.pk, "plan": plan.name, "status": "pending"}
    assert f"Run #{run.pk} sent" in err.getvalue()
