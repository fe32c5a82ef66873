"""The brief's API: `WorkloadPredictionService().predictor.predict_workload_range(datetime.now(), hours_ahead=24)`
and `.analyze_workload_trends()`, over the same history, models and backtests as the hourly forecasts."""

from __future__ import annotations

from datetime import datetime
from numbers import Integral

import pandas as pd
from django.conf import settings
from django.utils import timezone

from apps.scaling import forecasting
from apps.scaling.history import HistoryUnavailable
from apps.scaling.models import ScalingPolicy, WorkloadForecast
from apps.scaling.services import usable_history
from apps.services.models import Service

METRICS = WorkloadForecast.Metric.values


class WorkloadPredictor:
    """Forecasts and patterns of one service's workload (request rate, CPU, memory, response time)."""

    def __init__(self, policy: ScalingPolicy):
        self.policy = policy

    def _history(self, metric: str, until: datetime):
        return usable_history(self.policy, metric, now=until)

    def predict_workload_range(self, start: datetime, hours_ahead: int = 24) -> list[dict]:
        """Per hour from `start`'s hour: each metric's P10/P50/P90 and the model that made it (a metric without
        history, or whose history ends over a week before `start`, is left out)."""
        if isinstance(hours_ahead, bool) or not isinstance(hours_ahead, Integral) or not 1 <= hours_ahead <= 168:
            raise ValueError("hours_ahead must be a whole number of hours, 1 to 168.")
        start = timezone.make_aware(start) if timezone.is_naive(start) else start
        first = pd.Timestamp(start).tz_convert("UTC").floor("h")  # the histories' hours are cut in UTC
        wanted = pd.date_range(first, periods=hours_ahead, freq="h")
        hours: dict[pd.Timestamp, dict] = {}
        for metric in METRICS:
            try:
                series = self._history(metric, start)
            except HistoryUnavailable:
                continue
            # Rows are matched by their hour, not their place: the metrics' histories end at different hours
            # (the request rate leaves the hour in progress out, a resource monitor that stopped ends early),
            # and a forecast from an earlier end must reach the hours asked for.
            behind = int((first - series.index[-1]) // pd.Timedelta(hours=1)) - 1
            if behind > forecasting.WEEK:
                continue
            prediction, selection = forecasting.forecast(
                series, max(behind, 0) + int(hours_ahead), max_folds=settings.SCALING_BACKTEST_FOLDS
            )
            for at, point in zip(prediction.index, prediction.points(), strict=True):
                if not wanted[0] <= at <= wanted[-1]:
                    continue
                row = hours.setdefault(at, {"timestamp": point["at"]})
                row[metric] = {key: point[key] for key in ("p10", "p50", "p90")}
                row[f"{metric}_model"] = selection.model.name
        return [hours[at] for at in sorted(hours)]

    def analyze_workload_trends(self, until: datetime | None = None) -> dict:
        """Periods, named peaks and troughs, surges and trend of each metric's history."""
        until = until or timezone.now()
        trends = {}
        for metric in METRICS:
            try:
                trends[metric] = forecasting.analyze_patterns(self._history(metric, until))
            except HistoryUnavailable as exc:
                trends[metric] = {"unavailable": str(exc)}
        return {"service": self.policy.service.slug, "source": self.policy.history_source, "metrics": trends}


class WorkloadPredictionService:
    """Bound to one service's scaling policy: a slug, a Service, or the first predictive policy."""

    def __init__(self, service: str | Service | None = None):
        policies = ScalingPolicy.objects.select_related("service").filter(predictive=True)
        if isinstance(service, Service):
            policies = policies.filter(service=service)
        elif service:
            policies = policies.filter(service__slug=service)
        policy = policies.order_by("service__name").first()
        if policy is None:
            raise LookupError(f"No predictive scaling policy for {service or 'any service'}.")
        self.predictor = WorkloadPredictor(policy)
