"""`manage.py scaling forecast` took a minute or more (four models' backtests per metric) and printed nothing
until the end: it looked hung. It now says on stderr which service and metric it is at, as `bench` and
`optimize` do, as it goes; stdout keeps the same lines."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.scaling import services
from apps.scaling.models import WorkloadForecast
from apps.services.models import Service

pytestmark = pytest.mark.django_db


class Recorded(StringIO):
    """stderr, noting how many forecasts were stored when each line was written."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[int, str]] = []

    def write(self, text: str) -> int:
        if text.strip():
            self.lines.append((WorkloadForecast.objects.count(), text.strip()))
        return super().write(text)


def test_forecast_reports_each_metric_on_stderr_as_it_goes(settings):
    settings.SCALING_HISTORY_DAYS = 4
    service = Service.objects.create(name="ward", slug="ward", route_prefix="api/ward/")
    services.scaling_policy_ensure(service, history_source="synthetic", predictive=True)
    out, err = StringIO(), Recorded()
    call_command("scaling", "forecast", "--service", "ward", stdout=out, stderr=err)
    metrics = WorkloadForecast.Metric.values
    assert service.forecasts.count() == len(metrics)
    for done, metric in enumerate(metrics):
        started = [stored for stored, line in err.lines if line.startswith(f"ward {metric}")]
        assert started and started[0] == done, err.lines  # written before that metric's forecast, not at the end
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[: len(metrics)]] == [f"forecast  ward/{m}" for m in metrics]
    assert lines[len(metrics)].startswith("plan      ward: ") and len(lines) == len(metrics) + 1
