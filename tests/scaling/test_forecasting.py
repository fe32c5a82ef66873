"""Forecasting: scores, backtests, model selection, calibrated bands and the patterns it names."""

import ast
import json
import os

import numpy as np
import pandas as pd
import pytest

from apps.scaling import forecasting
from apps.scaling.forecasting import Forecast, SeasonalNaive, backtest, mase, select_model, smape
from apps.scaling.synthetic import hospital_traffic
from tests.helpers import run_python

END = pd.Timestamp("2026-11-23", tz="UTC")  # a Monday


def test_mase_and_smape():
    train = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 2.0])
    # The in-sample naive (m=2) never errs: no scale, no score.
    assert mase(np.array([1.0]), np.array([1.0]), train, 2) is None
    train = np.array([0.0, 2.0, 4.0, 6.0])  # naive (m=1) errs by 2 each step
    assert mase(np.array([10.0, 10.0]), np.array([11.0, 9.0]), train, 1) == pytest.approx(0.5)
    assert smape(np.array([100.0, 0.0]), np.array([50.0, 0.0])) == pytest.approx(100 * (2 * 50 / 150) / 2)


class Fixed:
    """A model whose band is fixed, to check what the backtest counts."""

    name = "fixed"

    def __init__(self, width: float):
        self.width = width

    def fit_predict(self, series, hours):
        index = pd.date_range(series.index[-1] + pd.Timedelta(hours=1), periods=hours, freq="h")
        mid = np.full(hours, series.mean())
        return Forecast(index, mid - self.width, mid, mid + self.width)


def test_backtest_counts_coverage_over_its_folds():
    series = hospital_traffic(end=END, hours=10 * 24, seed=1)["request_rate"]
    assert backtest(Fixed(1e9), series, folds=2).coverage == 1.0
    assert backtest(Fixed(0.0), series, folds=2).coverage == 0.0
    assert backtest(Fixed(0.0), series, folds=2).folds == 2


def test_seasonal_naive_repeats_the_season():
    series = pd.Series(np.tile(np.arange(24.0), 5), index=pd.date_range(END, periods=120, freq="h"))
    prediction = SeasonalNaive(24).fit_predict(series, 24)
    assert list(prediction.p50) == list(np.arange(24.0))


def test_selection_picks_the_lowest_backtest_mase_and_the_learned_model_beats_the_naive():
    series = hospital_traffic(end=END, hours=21 * 24, seed="selection")["request_rate"]
    selection = select_model(series, max_folds=2)
    scores = {s.model: s for s in selection.scores}
    assert set(scores) == {"seasonal_naive_24", "seasonal_naive_168", "holt_winters", "gradient_boosting",
                           "calendar_profile"}  # fmt: skip
    assert selection.criterion == "mase_168"
    best = min(scores.values(), key=lambda s: s.mase_168)
    assert selection.model.name == best.model
    assert best.mase_168 < scores["seasonal_naive_168"].mase_168


def test_the_calendar_profile_passes_over_a_surge_and_knows_weekends():
    index = pd.date_range("2026-10-05", periods=21 * 24, freq="h", tz="UTC")  # a Monday, three weeks
    quiet = np.where(index.day_of_week >= 5, 0.5, 1.0)
    series = pd.Series(100 * quiet * (1 + 0.5 * np.sin(2 * np.pi * index.hour / 24)), index=index)
    series.iloc[-30:-26] *= 3  # an emergency surge yesterday
    forecast = forecasting.CalendarProfile().fit_predict(series, 48)  # the next two days: Monday, Tuesday
    expected = (
        100
        * np.where(forecast.index.day_of_week >= 5, 0.5, 1.0)
        * (1 + 0.5 * np.sin(2 * np.pi * forecast.index.hour / 24))
    )
    assert np.allclose(forecast.p50, expected, rtol=0.01)  # the surge left no trace, the day types kept
    assert np.all(forecast.p10 <= forecast.p50) and np.all(forecast.p50 <= forecast.p90)


def test_on_hospital_traffic_the_calendar_profile_beats_the_weekly_naive_with_calibrated_bands():
    series = hospital_traffic(end=END, hours=28 * 24, seed="profile")["request_rate"]
    profile, naive = (
        backtest(forecasting.CalendarProfile(), series, folds=7),
        backtest(SeasonalNaive(168), series, folds=7),
    )
    assert profile.mase_168 < naive.mase_168
    assert 0.7 <= profile.coverage <= 0.9


def test_too_little_history_falls_back_to_the_daily_naive():
    series = hospital_traffic(end=END, hours=60, seed=2)["request_rate"]
    selection = select_model(series)
    assert selection.model.name == "seasonal_naive_24" and selection.scores == []


def test_regularize_fills_gaps_and_clips():
    index = pd.date_range(END, periods=72, freq="h")
    series = pd.Series(np.arange(72.0), index=index).drop(index[[10, 11, 40]])
    series.iloc[0] = -5
    filled = forecasting.regularize(series)
    assert len(filled) == 72 and filled.min() == 0 and filled[index[10]] == pytest.approx(10.0)


def test_patterns_name_the_rounds_the_nights_and_the_surges():
    traffic = hospital_traffic(end=END, hours=21 * 24, seed="patterns", surges_per_week=0)["request_rate"]
    traffic[traffic.index[-50]] *= 4  # an emergency
    patterns = forecasting.analyze_patterns(traffic)
    assert patterns["periods"]["daily"]["found"] and patterns["periods"]["weekly"]["found"]
    names = [peak["name"] for peak in patterns["peaks"]]
    assert names == ["morning rounds", "afternoon rounds"]
    assert [trough["name"] for trough in patterns["troughs"]] == ["night"]
    assert 0.5 < patterns["weekend_ratio"] < 0.7
    assert patterns["surges"][0]["at"] == traffic.index[-50].isoformat()


def test_a_flat_or_empty_history_has_no_period_and_nothing_jsonb_refuses():
    flat = pd.Series(120.0, index=pd.date_range(END, periods=96, freq="h"))
    patterns = forecasting.analyze_patterns(flat)
    assert patterns["periods"] == {"daily": {"acf": None, "found": False}, "weekly": None}
    json.dumps(patterns, allow_nan=False)
    idle = pd.Series(0.0, index=pd.date_range(END, periods=21 * 24, freq="h"))  # no request in three weeks
    patterns = forecasting.analyze_patterns(idle)
    assert patterns["periods"]["weekly"] == {"acf": None, "found": False} and "weekend_ratio" not in patterns
    json.dumps(patterns, allow_nan=False)


def _band_is_ordered(prediction: Forecast) -> bool:
    return bool(np.all(prediction.p10 <= prediction.p50) and np.all(prediction.p50 <= prediction.p90))


def test_the_band_never_crosses_the_median():
    # Gradient boosting whose quantile models over-cover the calm held-out week: a negative correction.
    hours = np.arange(28 * 24)
    noise = np.where(hours < 21 * 24, np.random.default_rng(1).normal(0, 40, hours.size), 0.0)
    noisy = pd.Series(
        100 + 60 * np.sin(2 * np.pi * (hours % 24) / 24) + noise, index=pd.date_range(END, periods=hours.size, freq="h")
    )
    assert _band_is_ordered(forecasting.QuantileBoosting().fit_predict(noisy.clip(lower=0), 24))
    # A falling load: every seasonal difference is negative, so both error quantiles are below 0.
    hours = np.arange(10 * 24)
    falling = pd.Series(
        500 - 1.5 * hours + 20 * np.sin(2 * np.pi * (hours % 24) / 24),
        index=pd.date_range(END, periods=hours.size, freq="h"),
    )
    for model in (SeasonalNaive(24), forecasting.HoltWinters()):
        prediction = model.fit_predict(falling, 24)
        assert _band_is_ordered(prediction) and np.all(prediction.p10 >= 0), model.name


def test_gradient_boosting_fits_on_one_thread_and_calibrates_without_a_median_model(monkeypatch):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_info

    fits, fit = [], HistGradientBoostingRegressor.fit

    def recorded(self, *args, **kwargs):
        fits.append((self.quantile, {pool["num_threads"] for pool in threadpool_info()}))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(HistGradientBoostingRegressor, "fit", recorded)
    series = hospital_traffic(end=END, hours=21 * 24, seed="threads")["request_rate"]
    forecasting.QuantileBoosting().fit_predict(series, 24)
    # Tiny fits: OpenMP and BLAS threads cost more than they give (several times slower on a busy host).
    assert [quantile for quantile, _ in fits] == [0.1, 0.9, 0.1, 0.5, 0.9]
    assert all(threads == {1} for _, threads in fits)


def test_a_thread_pool_loaded_after_the_first_forecast_is_held_to_one_thread_too():
    """torch's OpenMP runtime loaded after a first forecast (a model in the same worker): the limit, kept from the
    first forecast, left it at every core. A fresh interpreter, so the order is this one whatever the suite loaded."""
    code = (
        "import django; django.setup()\n"
        "from sklearn.ensemble import HistGradientBoostingRegressor\n"
        "from threadpoolctl import threadpool_info\n"
        "from apps.scaling import forecasting\n"
        "from apps.scaling.synthetic import hospital_traffic\n"
        "from tests.scaling.test_forecasting import END\n"
        "series = hospital_traffic(end=END, hours=21 * 24, seed='threads')['request_rate']\n"
        "forecasting.QuantileBoosting().fit_predict(series, 24)\n"
        "import torch  # noqa: F401\n"
        "fits, fit = [], HistGradientBoostingRegressor.fit\n"
        "def recorded(self, *args, **kwargs):\n"
        "    fits.append({pool['filepath']: pool['num_threads'] for pool in threadpool_info()})\n"
        "    return fit(self, *args, **kwargs)\n"
        "HistGradientBoostingRegressor.fit = recorded\n"
        "forecasting.QuantileBoosting().fit_predict(series, 24)\n"
        "print(fits[0])\n"
    )
    done = run_python(code, dict(os.environ), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    pools = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert any("/torch/" in path for path in pools), pools  # torch's runtime is among them
    assert set(pools.values()) == {1}, pools


def test_holidays_are_found_in_utc_hours():
    index = pd.date_range("2026-11-10", periods=72, freq="h", tz="UTC")  # Veterans Day is the 11th
    holiday = forecasting.calendar_features(index)["holiday"]
    assert list(holiday.groupby(index.day).max()) == [0, 1, 0]
