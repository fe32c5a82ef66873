"""The hourly forecast task stops between forecasts when its worker is shutting down (Celery's
worker_shutting_down signal, sent for real here): a fresh `make run` queued one for every service, and one run
(37.6 s) outlasted the worker's 35 s warm shutdown and was killed mid-forecast. The forecasts and plans made
before the signal are kept. With the prefork pool the task runs in a child the signal never reaches: the flag
is also in the shared cache, under the worker's node name, as another process sees."""

import os
import socket
from datetime import UTC, datetime

import pytest
from celery.signals import worker_init, worker_shutting_down
from django.core.cache import cache

from apps.scaling import services, shutdown, tasks
from apps.scaling.models import ScalingRecommendation, WorkloadForecast
from apps.services.models import Service
from tests.helpers import run_python, wait_for

pytestmark = pytest.mark.django_db

HOUR = datetime(2026, 3, 2, 9, tzinfo=UTC)
METRICS = len(WorkloadForecast.Metric.values)
NODE = socket.gethostname()  # the node name an eagerly applied task's request carries
OTHER_NODE = "celery@d-forecast-shutdown-test"


@pytest.fixture(autouse=True)
def _short_history(settings, monkeypatch):
    settings.SCALING_HISTORY_DAYS = 10  # enough for every model, quick to backtest
    settings.SCALING_BACKTEST_FOLDS = 1
    monkeypatch.setattr(services, "forecast_hour", lambda now=None: HOUR, raising=False)


class _Worker:
    """What worker_init sends: the worker, named."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname


@pytest.fixture(autouse=True)
def _workers_started_afresh():
    """No test leaves a worker of this process flagged: as each worker does when it starts (worker_init's
    receiver, called, not the signal sent: that would also install Celery's Django worker fixup in the test
    process, whose task_prerun handlers then fail every later test that sends task signals itself)."""
    yield
    for node in (NODE, OTHER_NODE):
        shutdown.on_worker_init(sender=_Worker(node))


def _services() -> list[Service]:
    made = []
    for slug in ("triage", "radiology"):
        service = Service.objects.create(name=slug.title(), slug=slug, route_prefix=f"api/{slug}/")
        services.scaling_policy_ensure(service, history_source="synthetic")
        made.append(service)
    return made


def _shut_down_after(monkeypatch, forecasts: int) -> list[str]:
    """The worker is told to shut down (its signal, as Celery sends it) once `forecasts` forecasts are made;
    the slugs of the services forecast, in order."""
    real = services.forecast_create
    made: list[str] = []

    def forecast_create(policy, metric, **kwargs):
        forecast = real(policy, metric, **kwargs)
        made.append(policy.service.slug)
        if len(made) == forecasts:
            worker_shutting_down.send(sender=NODE, sig="SIGTERM", how="Warm", exitcode=0)
        return forecast

    monkeypatch.setattr(services, "forecast_create", forecast_create)
    return made


def test_a_shutdown_between_services_keeps_the_first_ones_forecasts_and_plan_and_stops(monkeypatch):
    _services()
    made = _shut_down_after(monkeypatch, forecasts=METRICS)
    report = tasks.forecast.apply(throw=True).get()
    first, second = Service.objects.get(slug=made[0]), Service.objects.exclude(slug=made[0]).get()
    assert made == [first.slug] * METRICS
    assert first.forecasts.count() == METRICS
    assert ScalingRecommendation.objects.filter(service=first).count() == 1
    assert not second.forecasts.exists() and not ScalingRecommendation.objects.filter(service=second).exists()
    assert f"{second.slug} and the services after it: {services.STOPPED}" in report["skipped"]


def test_a_shutdown_between_metrics_keeps_the_forecast_made_and_stops(monkeypatch):
    _services()
    made = _shut_down_after(monkeypatch, forecasts=1)
    report = tasks.forecast.apply(throw=True).get()
    assert len(made) == 1
    assert WorkloadForecast.objects.count() == 1 and WorkloadForecast.objects.get().service.slug == made[0]
    assert not ScalingRecommendation.objects.exists()
    assert any(line.startswith(f"{made[0]} ") and line.endswith(services.STOPPED) for line in report["skipped"])


def test_without_a_shutdown_every_service_is_forecast():
    _services()
    report = tasks.forecast.apply(throw=True).get()
    assert WorkloadForecast.objects.count() == 2 * METRICS and ScalingRecommendation.objects.count() == 2
    assert not any(services.STOPPED in line for line in report["skipped"])


def test_another_process_of_the_worker_sees_the_flag_until_a_worker_of_that_name_starts():
    worker_shutting_down.send(sender=OTHER_NODE, sig="SIGTERM", how="Warm", exitcode=0)
    assert shutdown.worker_shutting_down(OTHER_NODE)
    assert not shutdown.worker_shutting_down("celery@another-worker") and not shutdown.worker_shutting_down(None)
    # Written to the shared cache from a thread of its own (the signal's handler may have interrupted a cache call).
    wait_for(lambda: cache.get(shutdown._key(OTHER_NODE)), 60, "the flag in the shared cache")
    check = (
        "import django; django.setup()\n"
        "from apps.scaling.shutdown import worker_shutting_down as shutting_down\n"
        f"print(shutting_down({OTHER_NODE!r}), shutting_down('celery@another-worker'))\n"
    )
    result = run_python(check, dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"], result.stdout

    shutdown.on_worker_init(sender=_Worker(OTHER_NODE))  # restarted under its old name (see the fixture above)
    assert not shutdown.worker_shutting_down(OTHER_NODE) and cache.get(shutdown._key(OTHER_NODE)) is None


def test_a_starting_worker_clears_its_flag_through_worker_init():
    """The tests call the receiver itself (see _workers_started_afresh); here, that a worker's start reaches it."""
    assert "scaling.shutdown.clear" in [key if isinstance(key, str) else key[0] for key, _ in worker_init.receivers]
