"""Forecasts across the hospital's daylight-saving changes: the load follows its wall clock."""

import numpy as np
import pandas as pd
import pytest

from apps.scaling import forecasting

ZONE = "America/New_York"  # clocks go forward 2026-03-08 02:00, back 2026-11-01 02:00


def _rounds(end: str, days: int = 21) -> pd.Series:
    """Morning rounds 06:00-09:00 on the local clock at 100, the rest of the day at 10, a little noise."""
    end_at = pd.Timestamp(end, tz=ZONE)
    index = pd.date_range(end=end_at - pd.Timedelta(hours=1), periods=days * 24, freq="h")
    load = np.where((index.hour >= 6) & (index.hour < 9), 100.0, 10.0)
    return pd.Series(load + np.random.default_rng(0).normal(0, 0.5, len(index)), index=index)


def _only(monkeypatch, model):
    monkeypatch.setattr(forecasting, "candidates", lambda hours: [model])


MODELS = [
    forecasting.SeasonalNaive(forecasting.DAY),
    forecasting.SeasonalNaive(forecasting.WEEK),
    forecasting.HoltWinters(),
    forecasting.QuantileBoosting(),
    forecasting.CalendarProfile(),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.name)
@pytest.mark.parametrize("end", ["2026-03-08 00:00", "2026-03-08 05:00", "2026-03-10 00:00", "2026-11-01 00:00"])
def test_the_morning_rounds_are_forecast_at_their_wall_clock_hours(monkeypatch, model, end):
    _only(monkeypatch, model)
    history = _rounds(end)
    prediction, _ = forecasting.forecast(history, 48, max_folds=2)
    # The real hours ahead: consecutive, in the hospital's zone, 48 of them.
    assert len(prediction.index) == 48 and str(prediction.index.tz) == ZONE
    assert (prediction.index[1:] - prediction.index[:-1] == pd.Timedelta(hours=1)).all()
    assert prediction.index[0] == history.index[-1] + pd.Timedelta(hours=1)
    rounds = (prediction.index.hour >= 6) & (prediction.index.hour < 9)
    by_hour = list(zip(prediction.index.hour, np.round(prediction.p50), strict=True))
    assert prediction.p50[rounds] == pytest.approx(100.0, abs=5), by_hour
    assert prediction.p50[~rounds] == pytest.approx(10.0, abs=5), by_hour


def test_the_skipped_hour_is_not_forecast_and_the_repeated_hour_is_forecast_twice():
    spring, _ = forecasting.forecast(_rounds("2026-03-08 00:00"), 24, max_folds=2)
    assert list(spring.index.hour[:4]) == [0, 1, 3, 4]  # no 02:30 on the day the clocks go forward
    autumn, _ = forecasting.forecast(_rounds("2026-11-01 00:00"), 24, max_folds=2)
    assert list(autumn.index.hour[:4]) == [0, 1, 1, 2]
    assert autumn.p50[1] == autumn.p50[2]


def test_a_utc_history_is_forecast_on_its_own_hours():
    history = _rounds("2026-03-08 00:00").tz_convert("UTC")
    prediction, _ = forecasting.forecast(history, 24, max_folds=2)
    assert prediction.index[0] == history.index[-1] + pd.Timedelta(hours=1) and str(prediction.index.tz) == "UTC"
