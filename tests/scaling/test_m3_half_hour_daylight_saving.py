"""Forecasts where the clocks move by 30 minutes (Lord Howe Island): the real hours after a change fall on :30
(or back on :00) of the local clock, and the models still see one row per local hour."""

import numpy as np
import pandas as pd
import pytest

from apps.scaling import forecasting

ZONE = "Australia/Lord_Howe"  # back 30 min at 02:00 on 2026-04-05 (+11:00 -> +10:30), forward on 2026-10-04


def _rounds(end_utc: str, days: int = 21) -> pd.Series:
    """Morning rounds in the local hours 06-08 at 100, the rest of the day at 10, a little noise."""
    end = pd.Timestamp(end_utc, tz="UTC")
    index = pd.date_range(end=end - pd.Timedelta(hours=1), periods=days * 24, freq="h").tz_convert(ZONE)
    load = np.where((index.hour >= 6) & (index.hour < 9), 100.0, 10.0)
    return pd.Series(load + np.random.default_rng(0).normal(0, 0.5, len(index)), index=index)


MODELS = [
    forecasting.SeasonalNaive(forecasting.DAY),
    forecasting.SeasonalNaive(forecasting.WEEK),
    forecasting.HoltWinters(),
    forecasting.QuantileBoosting(),
    forecasting.CalendarProfile(),
]

# UTC ends: the day before the clocks go back, the same day after it (the history spans the change, as for
# weeks after it), and the same around the change forward.
ENDS = ["2026-04-04 12:00", "2026-04-05 12:00", "2026-10-03 12:00", "2026-10-04 12:00"]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.name)
@pytest.mark.parametrize("end", ENDS)
def test_the_morning_rounds_are_forecast_at_their_local_hours_across_a_half_hour_change(monkeypatch, model, end):
    monkeypatch.setattr(forecasting, "candidates", lambda hours: [model])
    history = _rounds(end)
    prediction, _ = forecasting.forecast(history, 48, max_folds=2)
    # The real hours ahead, consecutive, in the zone; on the wall clock the hours after 4873e86 were NaN here.
    assert len(prediction.index) == 48 and str(prediction.index.tz) == ZONE
    assert (prediction.index[1:] - prediction.index[:-1] == pd.Timedelta(hours=1)).all()
    assert prediction.index[0] == history.index[-1] + pd.Timedelta(hours=1)
    assert np.isfinite(prediction.p10).all() and np.isfinite(prediction.p90).all()
    rounds = (prediction.index.hour >= 6) & (prediction.index.hour < 9)
    by_hour = [(str(at), round(value)) for at, value in zip(prediction.index, prediction.p50, strict=True)]
    assert prediction.p50[rounds] == pytest.approx(100.0, abs=5), by_hour
    assert prediction.p50[~rounds] == pytest.approx(10.0, abs=5), by_hour


def test_the_real_hours_ahead_map_onto_the_local_hours_they_fall_in():
    back, _ = forecasting.forecast(_rounds("2026-04-04 12:00"), 24, max_folds=2)
    local = [str(at.time())[:5] for at in back.index]
    # 01:00 (+11:00) and 01:30 (+10:30) are both in the local hour 01: one forecast for the two.
    crossing = local.index("01:30")
    assert local[crossing - 1 : crossing + 2] == ["01:00", "01:30", "02:30"]
    assert back.p50[crossing - 1] == back.p50[crossing]
    assert back.p50[crossing] != back.p50[crossing + 1]

    forward, _ = forecasting.forecast(_rounds("2026-10-03 12:00"), 24, max_folds=2)
    local = [str(at.time())[:5] for at in forward.index]
    # 01:30 (+10:30) is followed by 03:00 (+11:00): the local hour 02 is not forecast, no hour is read twice.
    crossing = local.index("03:00")
    assert local[crossing - 1] == "01:30"
    assert len(set(forward.p50)) == len(forward.p50)


def test_a_zone_half_an_hour_off_utc_without_daylight_saving_keeps_its_hours():
    history = _rounds("2026-04-05 12:00").tz_convert("Asia/Kolkata")
    prediction, _ = forecasting.forecast(history, 24, max_folds=2)
    assert prediction.index[0] == history.index[-1] + pd.Timedelta(hours=1)
    assert np.isfinite(prediction.p50).all()
