"""Forecasting at the edges a capacity planner meets: little history."""

import numpy as np
import pandas as pd
import pytest

from apps.scaling import forecasting
from apps.scaling.forecasting import SeasonalNaive, select_model

START = pd.Timestamp("2026-11-02", tz="UTC")  # a Monday


def _hourly(values, start=START) -> pd.Series:
    values = np.asarray(values, dtype=float)
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="h"))


def _daily_ramp(hours: int) -> pd.Series:
    return _hourly(np.arange(hours) % 24 * 10.0)


@pytest.mark.parametrize("hours", [192, 216, 240, 300])
def test_the_weekly_naive_is_only_backtested_on_folds_that_hold_a_week(hours):
    # Train folds of 72-167 hours: values[len - 168 + h] indexed from the end (garbage) or past the start
    # (IndexError: index -96 is out of bounds for axis 0 with size 72).
    series = _daily_ramp(hours)
    selection = select_model(series, max_folds=7)
    folds = forecasting.backtest_folds(hours, max_folds=7)
    shortest = hours - folds * forecasting.DAY
    names = [score.model for score in selection.scores]
    assert ("seasonal_naive_168" in names) == (shortest >= forecasting.WEEK)


def test_the_weekly_naive_on_a_short_training_fold_is_not_scored_on_wrapped_values():
    # 3 folds of 200 hours: the first trains on 128 hours, under a week.
    series = _daily_ramp(200)
    selection = select_model(series, max_folds=3)
    assert "seasonal_naive_168" not in [score.model for score in selection.scores]


@pytest.mark.parametrize("hours", [1, 2, 23])
def test_less_than_a_day_of_history_forecasts_without_wrapping_around(hours):
    series = _daily_ramp(hours)
    prediction, selection = forecasting.forecast(series, 24)
    assert selection.model.name == "seasonal_naive_24"
    seen = dict(zip(series.index.hour, series.to_numpy(), strict=True))
    for at, value in zip(prediction.index, prediction.p50, strict=True):
        # An hour seen yesterday repeats; one not seen is the last value (persistence), never another hour's.
        assert value == seen.get(at.hour, series.iloc[-1])


def test_no_history_is_a_clear_error():
    with pytest.raises(ValueError, match="no history"):
        forecasting.forecast(pd.Series(dtype=float), 24)


def test_seasonal_naive_matches_an_independent_computation():
    series = _hourly(np.random.default_rng(3).gamma(2, 10, 24 * 9))
    prediction = SeasonalNaive(168).fit_predict(series, 24)
    values = series.to_numpy()
    assert np.array_equal(prediction.p50, values[-168:-144])
    differences = values[168:] - values[:-168]
    assert prediction.p90 - prediction.p50 == pytest.approx(np.percentile(differences, 90))
