"""Forecasts past the first day (the prediction API asks for up to 168 hours)."""

import numpy as np
import pandas as pd

from apps.scaling import forecasting
from apps.scaling.synthetic import hospital_traffic

END = pd.Timestamp("2026-11-23", tz="UTC")


def test_gradient_boosting_has_every_input_for_every_hour_of_the_week_ahead(monkeypatch):
    from sklearn.ensemble import HistGradientBoostingRegressor

    frames, predict = [], HistGradientBoostingRegressor.predict

    def recorded(self, frame):
        frames.append(frame)
        return predict(self, frame)

    series = hospital_traffic(end=END, hours=28 * 24, seed="week")["request_rate"]
    monkeypatch.setattr(HistGradientBoostingRegressor, "predict", recorded)
    forecasting.QuantileBoosting().fit_predict(series, 168)
    ahead = [frame for frame in frames if frame.index[0] > series.index[-1]]
    assert sum(len(frame) for frame in ahead) == 3 * 168  # P10, P50 and P90 of every hour
    # Past the first day the lags of a day were missing: the models, trained with them always there, read
    # every later hour down their missing-value branches.
    assert not any(frame.isna().any().any() for frame in ahead)


def test_gradient_boosting_week_ahead_stays_calibrated():
    full = hospital_traffic(end=END + pd.Timedelta(days=7), hours=35 * 24, seed="h", surges_per_week=0)["request_rate"]
    history, actual = full.iloc[:-168], full.iloc[-168:].to_numpy()
    prediction = forecasting.QuantileBoosting().fit_predict(history, 168)
    first_day = forecasting.QuantileBoosting().fit_predict(history, 24)
    assert np.array_equal(prediction.p50[:24], first_day.p50)  # the first day as before
    later = slice(24, None)
    errors = np.abs(actual[later] - prediction.p50[later])
    assert errors.mean() < 1.2 * np.abs(actual[:24] - prediction.p50[:24]).mean()  # was 1.55x
    assert np.mean((actual >= prediction.p10) & (actual <= prediction.p90)) >= 0.75  # was 0.66
