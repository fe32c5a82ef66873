"""The hourly forecast run sent by two beat pods at once (an evicted pod's replacement runs beside the old
one for a while) makes one set of forecasts and one replica plan per service and hour. The hour is fixed by
the test, so a run at the turn of an hour cannot split the two sends over two hours."""

from datetime import UTC, datetime

import pytest

from apps.scaling import forecasting, services, tasks
from apps.scaling.models import ScalingRecommendation, WorkloadForecast
from apps.services.models import Service

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _short_history(settings, monkeypatch):
    settings.SCALING_HISTORY_DAYS = 10  # enough for every model, quick to backtest
    settings.SCALING_BACKTEST_FOLDS = 1
    monkeypatch.setattr(services, "forecast_hour", lambda now=None: HOUR, raising=False)


def _service() -> Service:
    service = Service.objects.create(name="Triage", slug="triage", route_prefix="api/triage/")
    services.scaling_policy_ensure(service, history_source="synthetic")
    return service


def test_the_hourly_run_sent_twice_in_one_hour_forecasts_and_plans_once():
    service = _service()
    tasks.forecast()
    assert service.forecasts.count() == len(WorkloadForecast.Metric.values)
    assert ScalingRecommendation.objects.filter(service=service).count() == 1
    second = tasks.forecast()
    assert service.forecasts.count() == len(WorkloadForecast.Metric.values)
    assert ScalingRecommendation.objects.filter(service=service).count() == 1
    assert second["forecasts"] == [] and second["recommendations"] == []
    assert all("already forecast" in line for line in second["skipped"])


def test_a_run_beside_it_that_inserts_first_is_kept_and_this_one_plans_nothing(monkeypatch):
    """Both runs passed the check before either inserted: the database's constraint keeps one."""
    service = _service()
    real = forecasting.forecast

    def other_run_inserts_first(series, **kwargs):
        prediction, selection = real(series, **kwargs)
        for metric in WorkloadForecast.Metric.values:
            WorkloadForecast.objects.get_or_create(
                service=service, metric=metric, hour=HOUR,
                defaults={"source": "synthetic", "history_hours": 1, "model": "other-run"},
            )  # fmt: skip
        return prediction, selection

    monkeypatch.setattr(forecasting, "forecast", other_run_inserts_first)
    report = tasks.forecast()
    assert set(service.forecasts.values_list("model", flat=True)) == {"other-run"}
    assert service.forecasts.count() == len(WorkloadForecast.Metric.values)
    assert report["forecasts"] == [] and not ScalingRecommendation.objects.filter(service=service).exists()


def test_forecasts_made_by_hand_are_not_held_to_the_hour():
    service = _service()
    tasks.forecast()
    services.forecasts_refresh(services=[service])  # `manage.py scaling forecast`: always forecasts
    assert service.forecasts.count() == 2 * len(WorkloadForecast.Metric.values)
