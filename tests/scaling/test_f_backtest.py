"""Backtest figures against an independent computation, and no fold sees its own future."""

import numpy as np
import pandas as pd
import pytest

from apps.scaling import forecasting
from apps.scaling.forecasting import Forecast, SeasonalNaive, backtest

START = pd.Timestamp("2026-11-02", tz="UTC")


def _noisy(hours: int, seed: int = 7) -> pd.Series:
    index = pd.date_range(START, periods=hours, freq="h")
    rng = np.random.default_rng(seed)
    return pd.Series(50 + 30 * np.sin(2 * np.pi * index.hour / 24) + rng.normal(0, 5, hours), index=index)


def test_the_daily_naive_backtest_matches_numpy():
    series, folds = _noisy(20 * 24), 4
    score = backtest(SeasonalNaive(24), series, folds=folds)
    values = series.to_numpy()
    mase, inside = [], 0
    for fold in range(folds, 0, -1):
        cut = len(values) - fold * 24
        train, actual, predicted = values[:cut], values[cut : cut + 24], values[cut - 24 : cut]
        mase.append(np.mean(np.abs(actual - predicted)) / np.mean(np.abs(np.diff(train.reshape(-1, 24), axis=0))))
        differences = train[24:] - train[:-24]
        low, high = predicted + np.percentile(differences, 10), predicted + np.percentile(differences, 90)
        inside += np.sum(
            (actual >= np.maximum(np.minimum(low, predicted), 0)) & (actual <= np.maximum(high, predicted))
        )
    assert score.mase_24 == pytest.approx(np.mean(mase))
    assert score.coverage == pytest.approx(inside / (folds * 24))
    assert score.mase_168 is not None and score.folds == folds


class Spy:
    """A model that remembers what each fit saw."""

    name = "spy"

    def __init__(self):
        self.seen = []

    def fit_predict(self, series, hours):
        self.seen.append(series.index[-1])
        index = pd.date_range(series.index[-1] + pd.Timedelta(hours=1), periods=hours, freq="h")
        return Forecast(index, np.zeros(hours), np.zeros(hours), np.zeros(hours))


def test_no_fold_trains_on_the_hours_it_is_scored_on():
    series, spy = _noisy(10 * 24), Spy()
    backtest(spy, series, folds=3)
    assert spy.seen == [series.index[-3 * 24 - 1], series.index[-2 * 24 - 1], series.index[-24 - 1]]


def test_holt_winters_point_forecast_is_statsmodels():
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    series = _noisy(6 * 24)
    prediction = forecasting.HoltWinters().fit_predict(series, 24)
    expected = ExponentialSmoothing(
        series.to_numpy(), trend=None, seasonal="add", seasonal_periods=24, initialization_method="heuristic"
    ).fit()
    assert prediction.p50 == pytest.approx(np.maximum(expected.forecast(24), 0))


def test_a_constant_or_idle_series_has_no_mase_and_a_finite_forecast():
    for level in (0.0, 40.0):
        series = pd.Series(level, index=pd.date_range(START, periods=16 * 24, freq="h"))
        prediction, selection = forecasting.forecast(series, 24, max_folds=3)
        assert all(score.mase_24 is None and score.mase_168 is None for score in selection.scores)
        assert prediction.p10 == pytest.approx(level) and prediction.p90 == pytest.approx(level)


def test_the_same_history_gives_the_same_forecast():
    series = _noisy(16 * 24)
    first, chosen = forecasting.forecast(series, 24, max_folds=2)
    again, chosen_again = forecasting.forecast(series.copy(), 24, max_folds=2)
    assert chosen.model.name == chosen_again.model.name
    assert np.array_equal(first.p10, again.p10) and np.array_equal(first.p90, again.p90)
