"""A flat or idle history gives no model a MASE (no seasonal naive error to scale by), and the sMAPEs tie:
the first candidate, the daily naive, won and replayed a one-off burst (a stress test today) tomorrow, a
P90 of 500 req/s for an idle service, which KEDA turned into a cron window of up to the maximum replicas."""

import numpy as np
import pandas as pd
import pytest

from apps.scaling import forecasting

HOURS = 24 * 14


def _series(values: np.ndarray) -> pd.Series:
    return pd.Series(values, pd.date_range("2026-11-01", periods=len(values), freq="h", tz="UTC"))


@pytest.mark.parametrize("level", [0.0, 5.0])
def test_a_one_off_burst_on_a_flat_history_is_not_forecast_for_tomorrow(level):
    values = np.full(HOURS, level)
    values[-10] = 500.0  # a one-hour stress benchmark 10 hours ago
    forecast, selection = forecasting.forecast(_series(values), 24, max_folds=3)
    assert all(score.mase_24 is None for score in selection.scores)
    assert selection.model.name == "calendar_profile"
    assert forecast.p90.max() < 50


def test_a_scored_history_is_still_ranked_by_its_mase():
    rng = np.random.default_rng(2)
    hours = np.arange(HOURS)
    values = 20 + 10 * np.sin(hours * 2 * np.pi / 24) + rng.normal(0, 2, HOURS)
    selection = forecasting.select_model(_series(values), max_folds=3)
    best = min(selection.scores, key=lambda score: getattr(score, selection.criterion))
    assert selection.model.name == best.model
