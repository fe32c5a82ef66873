"""`manage.py bench check` printed its run's report as a bare path (`Report: /benchmarks/runs/7/report/`), which
names no host: nothing a user could open from the terminal. It prints the whole URL, on CONTROLPLANE_URL (the
address seed_demo's links use), make run's address when that is unset."""

from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_run():
    service = service_ensure(slug="report-url-target", name="Report URL target", base_url="http://127.0.0.1:9")[0]
    plan = BenchmarkPlan.objects.create(name="nightly", service=service, requests=[])
    return BenchmarkRun.objects.create(
        plan=plan, status="succeeded", passed=True, finished_at=timezone.now(), summary={}, report_html="<p>report</p>"
    )


def _report_line(*args: str) -> str:
    out = StringIO()
    call_command("bench", "check", *args, stdout=out, stderr=StringIO())
    return next(line for line in out.getvalue().splitlines() if line.startswith("Report: "))


def test_bench_check_prints_the_report_as_a_url_on_controlplane_url(finished_run, monkeypatch, admin_client):
    monkeypatch.setenv("CONTROLPLANE_URL", "https://cp.example.org/")
    url = _report_line("nightly").removeprefix("Report: ")
    assert url == f"https://cp.example.org/benchmarks/runs/{finished_run.pk}/report/"
    assert b"<p>report</p>" in admin_client.get(urlsplit(url).path).content  # the page it names is the run's


def test_without_controlplane_url_the_report_is_on_make_runs_address(finished_run, monkeypatch):
    monkeypatch.delenv("CONTROLPLANE_URL", raising=False)
    assert _report_line("nightly") == f"Report: http://127.0.0.1:8000/benchmarks/runs/{finished_run.pk}/report/"
