"""Synthetic hospital traffic: what a clinical service's load looks like, for demos and benches.

Morning rounds (6-9) and afternoon rounds (14-16) peak, nights are quiet, weekends and holidays run
at about 60%, and a few emergency surges a month double the load for hours. Deterministic per seed.
The demo services' scaling policies read it (history source "synthetic", labelled as such everywhere).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from apps.scaling.forecasting import calendar_features

# Load by hour of day relative to the daily mean of a weekday.
HOURLY_SHAPE = np.array(
    [0.35, 0.3, 0.28, 0.28, 0.32, 0.5, 1.2, 1.9, 2.1, 1.6, 1.3, 1.25,
     1.2, 1.3, 1.7, 1.8, 1.5, 1.2, 1.0, 0.9, 0.8, 0.65, 0.5, 0.4]
)  # fmt: skip


def expected_request_rate(index: pd.DatetimeIndex, *, peak_rps: float = 120.0) -> np.ndarray:
    """The request rate the generator draws around: rounds, nights, weekends, holidays and trend, without
    its noise and surges. What no forecaster can beat (bench/forecast.py scores it as the oracle)."""
    calendar = calendar_features(index)
    shape = HOURLY_SHAPE[calendar["hour"].to_numpy()] / HOURLY_SHAPE.max()
    quiet = np.where((calendar["weekend"] | calendar["holiday"]).to_numpy() == 1, 0.6, 1.0)
    trend = 1 + 0.01 * np.arange(len(index)) / 168  # +1% a week
    return peak_rps * shape * quiet * trend


def _draws(seed: int, hours: np.ndarray, count: int) -> np.ndarray:
    """`count` uniform draws in (0, 1) for each absolute hour (hours since the epoch): an hour reads the same
    whatever window it falls in. Drawn in sequence over the window, every hour of the history changed each
    time the window moved on, so yesterday's forecast was laid over actuals that were not yesterday's."""
    return np.array([np.random.default_rng([seed, int(hour)]).random(count) for hour in hours]).reshape(-1, count)


def hospital_traffic(
    *,
    end: pd.Timestamp,
    hours: int,
    peak_rps: float = 120.0,
    seed: int | str = 0,
    surges_per_week: float = 0.7,
    time_zone: str = "UTC",
) -> pd.DataFrame:
    """Hourly request rate, CPU %, memory % and p95 response time ending at `end` (exclusive), of a hospital
    whose day runs on `time_zone`'s clock. Each hour's noise and surges belong to the hour: a later window
    repeats the hours it shares with an earlier one."""
    from scipy.special import gammaincinv, ndtri

    seed = zlib.crc32(seed.encode()) if isinstance(seed, str) else seed
    end = end.tz_localize("UTC") if end.tzinfo is None else end
    last = end.tz_convert("UTC").floor("h") - pd.Timedelta(hours=1)
    index = pd.date_range(end=last, periods=hours, freq="h").tz_convert(time_zone)
    absolute = ((index - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(hours=1)).to_numpy()
    longest = 4  # a surge lasts 2-4 hours: one that began up to 4 hours before the window reaches into it
    before = _draws(seed, np.arange(absolute[0] - longest, absolute[0]) if hours else np.arange(0), 3)
    draws = _draws(seed, absolute, 8)
    starts = np.concatenate([before, draws[:, :3]])
    surge = np.ones(longest + hours)
    for start in np.flatnonzero(starts[:, 0] < surges_per_week / 168):
        length = 2 + int(starts[start, 1] * 3)
        surge[start : start + length] *= 1.8 + 0.8 * starts[start, 2]
    surge = surge[longest:]
    normal = ndtri(draws[:, 3:7])
    rate = expected_request_rate(index, peak_rps=peak_rps) * surge * np.exp(0.08 * normal[:, 0])
    load = rate / peak_rps
    return pd.DataFrame(
        {
            "request_rate": rate,
            "cpu": np.clip(12 + 60 * load + 2.5 * normal[:, 1], 0, 100),
            "memory": np.clip(42 + 18 * load + 4 * ((absolute % 168) / 168) + normal[:, 2], 0, 100),
            "response_time": 60 + 140 * load**3 + 6 * gammaincinv(2, draws[:, 7]),
        },
        index=index,
    )
