"""The history forecasts are made from: gaps, bad samples, duplicate hours."""

import numpy as np
import pandas as pd
import pytest

from apps.scaling import forecasting

START = pd.Timestamp("2026-11-02", tz="UTC")  # a Monday


def _hourly(values, start=START) -> pd.Series:
    values = np.asarray(values, dtype=float)
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq="h"))


def _daily_ramp(hours: int) -> pd.Series:
    return _hourly(np.arange(hours) % 24 * 10.0)


def test_regularize_takes_infinite_samples_as_missing():
    series = _daily_ramp(96)
    series.iloc[50] = np.inf
    series.iloc[60] = -np.inf
    filled = forecasting.regularize(series)
    assert np.isfinite(filled).all()
    assert filled.iloc[50] == pytest.approx(series.iloc[49] + 10.0)  # interpolated, like a missing hour
    assert filled.iloc[60] == pytest.approx(series.iloc[59] + 10.0)


def test_regularize_interpolates_short_gaps_only():
    # Load 0 in the morning and 100 in the afternoon; 10 hours missing. interpolate(limit=3) filled the first
    # three hours of the long gap on a line towards its far end (90.9, 81.8, 72.7), the rest from yesterday.
    index = pd.date_range(START, periods=96, freq="h")
    truth = pd.Series(np.where(index.hour < 12, 0.0, 100.0), index=index)
    filled = forecasting.regularize(truth.drop(index[40:50]))
    assert list(filled.iloc[40:50]) == list(truth.iloc[16:26])  # the same hours a day before, all ten
    short = forecasting.regularize(truth.drop(index[[38, 39]]))  # a short gap: interpolated
    assert short.iloc[38] == pytest.approx(100.0) and short.iloc[39] == pytest.approx(100.0)


def test_regularize_averages_duplicate_hours():
    series = _daily_ramp(96)
    doubled = pd.concat([series, series.iloc[[5]] + 2.0])
    filled = forecasting.regularize(doubled)
    assert len(filled) == 96 and filled.iloc[5] == pytest.approx(series.iloc[5] + 1.0)
