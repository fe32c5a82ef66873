"""`bench run --json` without --wait printed nothing on stdout (only "Run #N sent" on stderr): a script had no
run id to follow. Now it prints the queued run as JSON."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from apps.benchmarks.models import BenchmarkRun
from tests.benchmarks.support import drain_benchmarks_queue, queued_plan

pytestmark = pytest.mark.django_db(transaction=True)


def test_json_without_wait_prints_the_queued_run():
    plan = queued_plan("queued json")
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("bench", "run", "queued json", "--json", stdout=out, stderr=err)
    finally:
        drain_benchmarks_queue()
    run = BenchmarkRun.objects.get(plan=plan)
    assert json.loads(out.getvalue()) == {"run": run.pk, "plan": plan.name, "status": "pending"}
    assert f"Run #{run.pk} sent" in err.getvalue()
