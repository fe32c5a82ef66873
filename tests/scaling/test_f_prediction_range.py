"""The brief's prediction API: hours matched across metrics, the hours asked for, bad input refused."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from apps.scaling import forecasting, prediction
from apps.scaling.history import HistoryUnavailable

NOW = datetime(2026, 11, 23, 12, 20, tzinfo=UTC)


def _history(last_hour: str, hours: int = 5 * 24, scale: float = 1.0) -> pd.Series:
    index = pd.date_range(end=pd.Timestamp(last_hour, tz="UTC"), periods=hours, freq="h")
    return pd.Series(scale * (10 + index.hour.to_numpy() + np.arange(hours) % 7), index=index, dtype=float)


HISTORIES = {
    "request_rate": _history("2026-11-23 11:00"),  # the hour in progress left out
    "cpu": _history("2026-11-23 12:00", scale=2),  # the hour in progress sampled
    "memory": _history("2026-11-23 08:00", scale=3),  # the resource monitor stopped four hours ago
}


@pytest.fixture
def predictor(monkeypatch):
    def history(policy, metric, *, now):
        if metric not in HISTORIES:
            raise HistoryUnavailable(f"{metric}: no history")
        return HISTORIES[metric]

    monkeypatch.setattr(prediction, "usable_history", history)
    return prediction.WorkloadPredictor(policy=None)


def _expected(metric: str, at: pd.Timestamp, settings) -> float:
    series = HISTORIES[metric]
    hours = int((at - series.index[-1]) // pd.Timedelta(hours=1))
    made, _ = forecasting.forecast(series, hours, max_folds=settings.SCALING_BACKTEST_FOLDS)
    return round(float(made.p50[-1]), 4)


def test_each_row_holds_every_metrics_forecast_for_its_own_hour(predictor, settings):
    rows = predictor.predict_workload_range(NOW, hours_ahead=6)
    # From the hour of `start`, six hours; rows by hour, not by their place in each metric's forecast.
    stamps = [pd.Timestamp(row["timestamp"]) for row in rows]
    assert stamps == list(pd.date_range("2026-11-23 12:00", periods=6, freq="h", tz="UTC"))
    for row, at in zip(rows, stamps, strict=True):
        assert "response_time" not in row
        for metric in ("request_rate", "memory"):
            assert row[metric]["p50"] == _expected(metric, at, settings), (metric, at)
        if at > HISTORIES["cpu"].index[-1]:
            assert row["cpu"]["p50"] == _expected("cpu", at, settings)
        else:
            assert "cpu" not in row  # a measured hour is no forecast


@pytest.mark.parametrize("hours_ahead", [0, 169, -1, 2.5, "24", True])
def test_hours_ahead_must_be_a_whole_number_of_hours_in_range(predictor, hours_ahead):
    with pytest.raises(ValueError, match="hours_ahead"):
        predictor.predict_workload_range(NOW, hours_ahead=hours_ahead)


def test_a_numpy_whole_number_of_hours_is_a_whole_number(predictor):
    assert len(predictor.predict_workload_range(NOW, hours_ahead=np.int64(3))) == 3
