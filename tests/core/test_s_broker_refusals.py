"""Every sender caught only kombu's OperationalError (the broker unreachable). RabbitMQ answering and refusing the
connection raises amqp's own NotAllowed (a vhost missing or down) as it is: the benchmark "Run now", the scaling
"Apply to the cluster now" and the schedules' "Run selected tasks" actions were a 500 (a benchmark run left
pending, never sent), `bench run` and `ping_worker` ended in a traceback. Each now names the refusal, through one
definition of "the broker did not take the send" (apps.core.broker_errors).
Real RabbitMQ: the app's sends go to a vhost that does not exist."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command

from apps.benchmarks.models import BenchmarkPlan, BenchmarkRun
from apps.core.broker_errors import send_errors
from apps.scaling import services as scaling_services
from apps.services.models import Service
from apps.services.services import service_ensure

pytestmark = pytest.mark.django_db(transaction=True)  # the benchmark send runs on the run's commit

BROKER = os.environ.get("CELERY_BROKER_URL") or os.environ.get("TEST_CELERY_BROKER_URL", "")
REFUSED = "the broker did not take it (NotAllowed: Connection.open: (530) NOT_ALLOWED - vhost h_s_missing not found)"


@pytest.fixture
def vhost_missing():
    """The app's sends go to a RabbitMQ vhost that does not exist; its connection pools are put back afterwards."""
    if not BROKER.startswith("amqp://"):
        pytest.skip("needs RabbitMQ (CELERY_BROKER_URL=amqp://...)")
    from controlplane.celery import app

    saved = app.conf.broker_write_url, app._pool, app.amqp._producer_pool
    app.conf.broker_write_url = BROKER.rsplit("/", 1)[0] + "/h_s_missing"
    app._pool = app.amqp._producer_pool = None  # the pools made for the working broker are kept aside
    yield
    app.conf.broker_write_url, app._pool, app.amqp._producer_pool = saved


@pytest.fixture
def plan() -> BenchmarkPlan:
    service = service_ensure(slug="target", name="Target", base_url="http://127.0.0.1:9")[0]
    requests = [{"name": "card", "method": "GET", "path": "/card", "weight": 1}]
    return BenchmarkPlan.objects.create(name="refused", service=service, requests=requests)


def _messages(response) -> list[tuple[str, str]]:
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


def test_benchmark_run_now_names_the_refusal_and_cancels_the_run(admin_client, plan, vhost_missing):
    admin_client.raise_request_exception = False
    response = admin_client.post(
        "/admin/benchmarks/benchmarkplan/", {"action": "run_now", "_selected_action": [plan.pk]}
    )
    assert response.status_code == 302, response.status_code  # was 500
    assert _messages(response) == [("error", f"{plan}: nothing was sent, {REFUSED}.")]
    assert BenchmarkRun.objects.get(plan=plan).status == BenchmarkRun.Status.CANCELLED  # was pending, never sent


def test_bench_run_names_the_refusal(plan, vhost_missing):
    with pytest.raises(CommandError) as refused:
        call_command("bench", "run", plan.name, stdout=StringIO(), stderr=StringIO())  # was NotAllowed's traceback
    run = BenchmarkRun.objects.get(plan=plan)
    assert str(refused.value) == f"Run #{run.pk} was not sent: {REFUSED}."
    assert run.status == BenchmarkRun.Status.CANCELLED


def test_ping_worker_names_the_refusal(vhost_missing):
    with pytest.raises(CommandError) as refused:
        call_command("ping_worker", "--timeout", "3", stdout=StringIO())  # was NotAllowed's traceback
    assert str(refused.value) == f"The task was not sent: {REFUSED}."


def test_scaling_apply_now_names_the_refusal(admin_client, settings, vhost_missing):
    settings.SCALING_KUBECONFIG = "/nonexistent/kubeconfig"  # configured; never read: the send is refused first
    policy, _ = scaling_services.scaling_policy_ensure(Service.objects.create(name="Triage", slug="triage"),
                                                       predictive=False)  # fmt: skip
    admin_client.raise_request_exception = False
    response = admin_client.post(
        "/admin/scaling/scalingpolicy/", {"action": "apply_now", "_selected_action": [policy.pk]}
    )
    assert response.status_code == 302, response.status_code  # was 500
    assert _messages(response) == [("warning", f"{policy}: not sent, {REFUSED}; the checker will send it.")]


def test_run_selected_tasks_names_the_refusal(admin_client, nightly, vhost_missing):
    task, _ = nightly
    admin_client.raise_request_exception = False
    response = admin_client.post(
        "/admin/django_celery_beat/periodictask/", {"action": "run_tasks", "_selected_action": [task.pk]}
    )
    assert response.status_code == 302, response.status_code  # was 500
    assert _messages(response) == [("error", f"The selected tasks were not sent: {REFUSED}.")]


def test_send_errors_are_kombus_and_the_transports_and_cached_per_app(vhost_missing):
    from amqp.exceptions import AccessRefused, NotAllowed
    from kombu.exceptions import OperationalError

    from controlplane.celery import app

    errors = send_errors(app)
    assert send_errors(app) is errors
    assert OperationalError in errors and issubclass(NotAllowed, errors) and issubclass(AccessRefused, errors)


def test_seed_demo_forecast_names_the_refusal(settings, tmp_path, vhost_missing):
    settings.VAR_DIR = tmp_path  # its credentials file, not the developer's
    stderr = StringIO()
    call_command("seed_demo", "--forecast", stdout=StringIO(), stderr=stderr)  # was NotAllowed's traceback
    assert f"Forecasts not sent, {REFUSED}: they will run on the hourly schedule." in stderr.getvalue()
