"""24-hour workload forecasts with P10/P50/P90 bands, chosen by backtest, and the patterns in the data.

Candidates: seasonal naive (the baseline every score is relative to), Holt-Winters (statsmodels), and
gradient boosting with quantile loss (scikit-learn) on the clinical calendar and lags of a day and a
week. Every candidate's band is calibrated on data it was not fitted on (split conformal), so a P10-P90
band means about 80% of actuals, not a hope. Pure computation: no Django here.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

HORIZON = 24
DAY, WEEK = 24, 168
QUANTILES = (0.1, 0.5, 0.9)
BAND = 0.8  # the P10-P90 band's nominal coverage

# The clinical calendar (hours of the hospital's day on its own clock: series come indexed in its time
# zone, see apps/scaling/history.py): [start, end).
CALENDAR = {
    "morning rounds": (6, 9),
    "afternoon rounds": (14, 16),
    "evening": (17, 22),
    "night": (22, 6),
}
SHIFT_CHANGES = (7, 15, 23)


def _in_window(hours: np.ndarray, start: int, end: int) -> np.ndarray:
    return (hours >= start) & (hours < end) if start < end else (hours >= start) | (hours < end)


@functools.cache
def _holiday_dates(first_year: int, last_year: int) -> pd.DatetimeIndex:
    """The US federal holidays of whole years: computing them took most of the calendar profile's time, and
    every fit asks for the same few years."""
    from pandas.tseries.holiday import USFederalHolidayCalendar

    return USFederalHolidayCalendar().holidays(f"{first_year}-01-01", f"{last_year}-12-31")


def _holidays(index: pd.DatetimeIndex) -> np.ndarray:
    days = index.normalize()
    days = days.tz_localize(None) if days.tz is not None else days
    return np.asarray(days.isin(_holiday_dates(days.min().year, days.max().year)))


def calendar_features(index: pd.DatetimeIndex) -> pd.DataFrame:
    """Hour, weekday, holidays and the clinical calendar: what a hospital's load follows."""
    hours = np.asarray(index.hour)
    frame = pd.DataFrame(index=index)
    frame["hour"] = hours
    frame["weekday"] = np.asarray(index.day_of_week)
    frame["weekend"] = (frame["weekday"] >= 5).astype(int)
    frame["holiday"] = _holidays(index).astype(int)
    frame["hour_sin"] = np.sin(2 * np.pi * hours / DAY)
    frame["hour_cos"] = np.cos(2 * np.pi * hours / DAY)
    for name, (start, end) in CALENDAR.items():
        frame[name.replace(" ", "_")] = _in_window(hours, start, end).astype(int)
    frame["shift_change"] = np.isin(hours, SHIFT_CHANGES).astype(int)
    return frame


def _features(series: pd.Series, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Calendar plus lags of at least a day, so every row of the next 24 hours has all its inputs."""
    frame = calendar_features(index)
    known = series.reindex(series.index.union(index))
    for lag in (DAY, 2 * DAY, WEEK):
        frame[f"lag_{lag}"] = known.shift(lag).reindex(index).to_numpy()
    frame["mean_prev_day"] = known.shift(DAY).rolling(DAY, min_periods=1).mean().reindex(index).to_numpy()
    return frame


def _future_index(series: pd.Series, hours: int) -> pd.DatetimeIndex:
    return pd.date_range(series.index[-1] + pd.Timedelta(hours=1), periods=hours, freq="h")


def _thread_pools():
    """The BLAS and OpenMP pools loaded in this process now: numpy's, scipy's and scikit-learn's, and any loaded
    since the last forecast. A controller kept from the first forecast left a runtime loaded later (torch's OpenMP,
    by a model in the same worker) at every core. Finding them takes 4-5 ms, against fits of hundreds."""
    import sklearn.ensemble  # noqa: F401 (loads its OpenMP runtime)
    import statsmodels.tsa.holtwinters  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_thread(fit_predict):
    """Fit on one thread. These series are hundreds of rows: BLAS and OpenMP threads spend longer waking
    and spinning than working (Holt-Winters 18x and each gradient boosting fit 4-6x slower with two
    threads on a busy host), and the workers already run forecasts side by side."""

    @functools.wraps(fit_predict)
    def wrapper(*args, **kwargs):
        with _thread_pools().limit(limits=1):
            return fit_predict(*args, **kwargs)

    return wrapper


@dataclass
class Forecast:
    index: pd.DatetimeIndex
    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray

    def points(self) -> list[dict]:
        return [
            {"at": at.isoformat(), "p10": round(float(lo), 4), "p50": round(float(mid), 4), "p90": round(float(hi), 4)}
            for at, lo, mid, hi in zip(self.index, self.p10, self.p50, self.p90, strict=True)
        ]


def _banded(index: pd.DatetimeIndex, p10: np.ndarray, p50: np.ndarray, p90: np.ndarray) -> Forecast:
    """The forecast with its band offsets applied, then P10 <= P50 <= P90 and none below 0 enforced. An
    offset may be negative (errors all on one side under a trend, or quantile models that over-covered
    their held-out days), and the replica plan reads the P90: it must never fall under the P50."""
    p50 = np.maximum(p50, 0)
    return Forecast(index, np.maximum(np.minimum(p10, p50), 0), p50, np.maximum(p90, p50))


def _band_offsets(errors: np.ndarray) -> tuple[float, float]:
    """Error quantiles around the point forecast that hold BAND of the calibration errors."""
    errors = errors[np.isfinite(errors)]
    if errors.size == 0:
        return 0.0, 0.0
    tail = (1 - BAND) / 2
    return float(np.quantile(errors, tail)), float(np.quantile(errors, 1 - tail))


class SeasonalNaive:
    """Tomorrow is today (m = 24), or this hour last week (m = 168)."""

    def __init__(self, period: int):
        self.period = period
        self.name = f"seasonal_naive_{period}"
        self.min_history = period  # hours it must see to be itself, in a backtest's every fold too

    def fit_predict(self, series: pd.Series, hours: int) -> Forecast:
        values = series.to_numpy()
        steps = np.arange(hours)
        positions = len(values) - self.period + (steps % self.period)
        # An hour the history does not reach a period back is the last value (persistence): indexed from the
        # end it was another hour's value, and past the start an IndexError.
        p50 = values[np.where(positions >= 0, positions, len(values) - 1)]
        # Its h-step errors for h <= m are exactly the seasonal differences.
        low, high = _band_offsets(values[self.period :] - values[: -self.period])
        return _banded(_future_index(series, hours), p50 + low, p50, p50 + high)


class HoltWinters:
    """Additive Holt-Winters with the weekly season when there are two weeks to learn it, else the daily."""

    name = "holt_winters"

    @staticmethod
    def _fit(series: pd.Series, params: dict | None = None):
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        period = WEEK if len(series) >= 2 * WEEK + DAY else DAY
        model = ExponentialSmoothing(
            series.to_numpy(), trend=None, seasonal="add", seasonal_periods=period, initialization_method="heuristic"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(**params, optimized=False) if params else model.fit()

    @_one_thread
    def fit_predict(self, series: pd.Series, hours: int) -> Forecast:
        calibration = _calibration_split(series)
        errors = []
        if calibration:
            # Day-ahead forecasts over the held-out days with the smoothing learnt before them (cheap refits).
            learnt = self._fit(series.iloc[:-calibration]).params
            params = {"smoothing_level": learnt["smoothing_level"], "smoothing_seasonal": learnt["smoothing_seasonal"]}
            for start in range(len(series) - calibration, len(series), DAY):
                day = series.iloc[start : start + DAY].to_numpy()
                predicted = np.asarray(self._fit(series.iloc[:start], params).forecast(len(day)))
                errors.extend(day - predicted)
        p50 = np.asarray(self._fit(series).forecast(hours))
        low, high = _band_offsets(np.asarray(errors))
        return _banded(_future_index(series, hours), p50 + low, p50, p50 + high)


def _calibration_split(series: pd.Series) -> int:
    """Hours held out to calibrate the band: a week when there are three, else two days, else none."""
    if len(series) >= 3 * WEEK:
        return WEEK
    if len(series) >= 5 * DAY:
        return 2 * DAY
    return 0


class QuantileBoosting:
    """Gradient boosting with quantile loss on calendar features and day/week lags; conformal bands."""

    name = "gradient_boosting"

    def _models(self, frame: pd.DataFrame, target: np.ndarray, quantiles: tuple[float, ...]) -> dict:
        from sklearn.ensemble import HistGradientBoostingRegressor

        models = {}
        for quantile in quantiles:
            model = HistGradientBoostingRegressor(
                loss="quantile", quantile=quantile, max_iter=100, learning_rate=0.1, max_leaf_nodes=15,
                min_samples_leaf=10, random_state=0,
            )  # fmt: skip
            models[quantile] = model.fit(frame, target)
        return models

    def _train(self, series: pd.Series, quantiles: tuple[float, ...] = QUANTILES) -> tuple[dict, list[str]]:
        """The quantile models, and the feature columns they use (a lag longer than the history is all
        missing, and left out)."""
        frame = _features(series, series.index).iloc[DAY:]
        columns = [name for name in frame.columns if frame[name].notna().any()]
        return self._models(frame[columns], series.to_numpy()[DAY:], quantiles), columns

    @_one_thread
    def fit_predict(self, series: pd.Series, hours: int) -> Forecast:
        calibration = _calibration_split(series)
        widen = 0.0
        if calibration:
            # The band's ends only: the calibration needs no median model.
            models, columns = self._train(series.iloc[:-calibration], (QUANTILES[0], QUANTILES[-1]))
            scores = []
            for start in range(len(series) - calibration, len(series), DAY):
                # Each held-out day forecast from the history before it, as the horizon really is.
                day = series.iloc[start : start + DAY]
                frame = _features(series.iloc[:start], day.index)[columns]
                low, high = models[0.1].predict(frame), models[0.9].predict(frame)
                scores.extend(np.maximum(low - day.to_numpy(), day.to_numpy() - high))
            # Conformalized quantile regression: how far outside its band the truth fell, at level BAND
            # (negative when the quantile models over-covered: the band narrows).
            widen = float(np.quantile(scores, min(1.0, BAND * (1 + 1 / len(scores)))))
        models, columns = self._train(series)
        index = _future_index(series, hours)
        # A day at a time, each day's median standing in for the hours its lags reach beyond the history:
        # past the first day a lag of a day was missing, and the models, trained with it always there, read
        # every hour of the week ahead as the same missing branch.
        known, bands = series, {q: [] for q in QUANTILES}
        for start in range(0, hours, DAY):
            day = index[start : start + DAY]
            frame = _features(known, day)[columns]
            for quantile in QUANTILES:
                bands[quantile].append(models[quantile].predict(frame))
            known = pd.concat([known, pd.Series(bands[0.5][-1], index=day)])
        p10, p50, p90 = (np.concatenate(bands[q]) for q in QUANTILES)
        return _banded(index, p10 - widen, p50, p90 + widen)


class CalendarProfile:
    """The similar-day method of load forecasting: each hour's median over the last four weeks' days of
    the same type (working day, or weekend and holiday), scaled to the last week's level. A median passes
    over emergency surges that a mean or a seasonal lag carries into tomorrow. Multiplicative bands from
    held-out days, since the noise scales with the load."""

    name = "calendar_profile"
    lookback_days = 28

    @staticmethod
    def _day_types(index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        calendar = calendar_features(index)
        return ((calendar["weekend"] | calendar["holiday"]) == 1).to_numpy(), calendar["hour"].to_numpy()

    def _fit(self, series: pd.Series):
        recent = series.iloc[-self.lookback_days * DAY :]
        quiet, hours = self._day_types(recent.index)
        values = recent.to_numpy()
        table = np.full((2, DAY), np.nan)
        for kind in (0, 1):
            for hour in range(DAY):
                chosen = values[(quiet == kind) & (hours == hour)]
                if chosen.size:
                    table[kind, hour] = np.median(chosen)
        for kind in (0, 1):  # a day type the history never had: the other's profile
            if np.isnan(table[kind]).all():
                table[kind] = table[1 - kind]

        def profile(index: pd.DatetimeIndex) -> np.ndarray:
            kinds, hours = self._day_types(index)
            return table[kinds.astype(int), hours]

        last = series.iloc[-WEEK:]
        base = profile(last.index)
        usable = base > 0
        level = float(np.median(last.to_numpy()[usable] / base[usable])) if usable.any() else 1.0
        return lambda index: profile(index) * level

    def fit_predict(self, series: pd.Series, hours: int) -> Forecast:
        calibration = _calibration_split(series)
        ratios = []
        if calibration:
            for start in range(len(series) - calibration, len(series), DAY):
                day = series.iloc[start : start + DAY]
                predicted = self._fit(series.iloc[:start])(day.index)
                usable = predicted > 0
                ratios.extend(day.to_numpy()[usable] / predicted[usable])
        index = _future_index(series, hours)
        p50 = np.nan_to_num(self._fit(series)(index))
        if ratios:
            tail = (1 - BAND) / 2
            low, high = np.quantile(ratios, tail), np.quantile(ratios, 1 - tail)
        else:
            low, high = 1.0, 1.0
        return _banded(index, p50 * low, p50, p50 * high)


def candidates(history_hours: int) -> list:
    models = [SeasonalNaive(DAY)]
    if history_hours >= WEEK + DAY:
        models.append(SeasonalNaive(WEEK))
    if history_hours >= 3 * DAY:
        models.append(HoltWinters())
    if history_hours >= WEEK + 2 * DAY:
        models.append(QuantileBoosting())
        models.append(CalendarProfile())
    return models


# --- scoring ----------------------------------------------------------------------------------------


def mase(actual: np.ndarray, predicted: np.ndarray, train: np.ndarray, period: int) -> float | None:
    """Mean absolute error over the in-sample seasonal naive's (Hyndman & Koehler): below 1 beats it."""
    if len(train) <= period:
        return None
    scale = np.mean(np.abs(train[period:] - train[:-period]))
    if not (scale > 0 and math.isfinite(scale)):
        return None
    score = float(np.mean(np.abs(actual - predicted)) / scale)
    return score if math.isfinite(score) else None


def smape(actual: np.ndarray, predicted: np.ndarray) -> float:
    denominator = np.abs(actual) + np.abs(predicted)
    ratio = np.where(denominator > 0, 2 * np.abs(actual - predicted) / np.where(denominator > 0, denominator, 1), 0)
    return float(100 * np.mean(ratio))


@dataclass
class Backtest:
    model: str
    folds: int
    mase_24: float | None
    mase_168: float | None
    smape: float
    coverage: float

    def as_dict(self) -> dict:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in self.__dict__.items()}


def backtest(model, series: pd.Series, *, folds: int = 3, horizon: int = HORIZON) -> Backtest:
    """Rolling origin: fit on everything before each of the last `folds` days, forecast that day."""
    errors24, errors168, smapes, inside, total = [], [], [], 0, 0
    for fold in range(folds, 0, -1):
        cut = len(series) - fold * horizon
        train, test = series.iloc[:cut], series.iloc[cut : cut + horizon]
        forecast = model.fit_predict(train, len(test))
        actual = test.to_numpy()
        for period, store in ((DAY, errors24), (WEEK, errors168)):
            score = mase(actual, forecast.p50, train.to_numpy(), period)
            if score is not None:
                store.append(score)
        smapes.append(smape(actual, forecast.p50))
        inside += int(np.sum((actual >= forecast.p10) & (actual <= forecast.p90)))
        total += len(actual)
    return Backtest(
        model=model.name,
        folds=folds,
        mase_24=float(np.mean(errors24)) if len(errors24) == folds else None,
        mase_168=float(np.mean(errors168)) if len(errors168) == folds else None,
        smape=float(np.mean(smapes)),
        coverage=inside / total if total else 0.0,
    )


def backtest_folds(history_hours: int, *, max_folds: int = 7) -> int:
    """As many day-long folds as leave a week (or three days) to train on, at most `max_folds`."""
    minimum = WEEK + 2 * DAY if history_hours >= 2 * WEEK else 3 * DAY
    return max(0, min(max_folds, (history_hours - minimum) // DAY))


@dataclass
class Selection:
    model: object
    scores: list[Backtest] = field(default_factory=list)
    criterion: str = "mase_24"


def select_model(series: pd.Series, *, max_folds: int = 7) -> Selection:
    """The candidate with the lowest backtest MASE (against the weekly naive when a week is there)."""
    if series.empty:
        raise ValueError("no history to forecast from")
    folds = backtest_folds(len(series), max_folds=max_folds)
    if folds == 0:
        return Selection(model=candidates(len(series))[0])
    # Only candidates each fold's training set holds enough for: the weekly naive on a fold under a week read
    # its 'last week' from the fold's end (or failed with an IndexError), and its score ranked that.
    shortest = len(series) - folds * HORIZON
    models = [model for model in candidates(len(series)) if getattr(model, "min_history", 0) <= shortest]
    scores = [backtest(model, series, folds=folds) for model in models]
    criterion = "mase_168" if all(s.mase_168 is not None for s in scores) else "mase_24"

    def rank(pair: tuple[Backtest, object]) -> tuple[float, float, int]:
        # Without a MASE (the folds' history flat: an idle service has no seasonal naive error to scale by),
        # the sMAPE ranks, and on its ties the calendar profile wins: every candidate forecast the flat folds
        # alike, and the first, the daily naive, repeated tomorrow a one-off burst (a stress test) from today.
        score = getattr(pair[0], criterion)
        return (
            score if score is not None else math.inf,
            round(pair[0].smape, 9),
            0 if pair[0].model == CalendarProfile.name else 1,
        )

    ranked = sorted(zip(scores, models, strict=True), key=rank)
    return Selection(model=ranked[0][1], scores=scores, criterion=criterion)


def forecast(series: pd.Series, hours: int = HORIZON, *, max_folds: int = 7) -> tuple[Forecast, Selection]:
    """The next `hours` of the series from the model its backtest chose."""
    if series.dropna().empty:
        raise ValueError("no history to forecast from")
    series = regularize(series)
    future = _future_index(series, hours)
    if series.index.tz is None:
        selection = select_model(series, max_folds=max_folds)
        return selection.model.fit_predict(series, hours), selection
    # The models see the hospital's wall clock, every day 24 hours: a lag of 24 or 168 rows, a Holt-Winters
    # season and a backtest fold are then a day or a week of its clock. On the real hours, the day the clocks
    # went forward read 07:00 from 06:00 the day before (and for a week, from 06:00 a week before): the
    # weekly naive planned the morning rounds an hour late.
    wall = wall_clock(series)
    selection = select_model(wall, max_folds=max_folds)
    first = wall.index[-1] + pd.Timedelta(hours=1)
    # Each real hour ahead at its place on the wall clock (its local time floored to the hour, as wall_clock
    # floors the history's): the hour clocks skip is left out, the hour they repeat read twice (and the repeat
    # of the history's last hour is the first hour ahead); where they move by 30 minutes, the hour they cross
    # is read by the two real hours that fall in it.
    positions = np.maximum(((future.tz_localize(None) - first) // pd.Timedelta(hours=1)).to_numpy(), 0)
    predicted = selection.model.fit_predict(wall, int(positions.max()) + 1)
    return Forecast(future, predicted.p10[positions], predicted.p50[positions], predicted.p90[positions]), selection


def wall_clock(series: pd.Series) -> pd.Series:
    """A series on its time zone's clock without the zone: every day 24 hours, each labelled with its local
    hour. The hour the clocks repeat is the mean of its two, the hour they skip interpolated."""
    # Floored to the local hour: where the clocks move by 30 minutes (Australia/Lord_Howe) the real hours
    # after a change fall on :30 (or back on :00), a grid from the first of them dropped every one of those,
    # and the forecast was NaN. Two real hours that land in one local hour are its mean, as the repeated hour.
    local = series.index.tz_localize(None).floor("h")
    naive = pd.Series(series.to_numpy(), index=local).groupby(level=0).mean()
    full = pd.date_range(naive.index[0], naive.index[-1], freq="h")
    return naive.reindex(full).interpolate(limit_area="inside")


def regularize(series: pd.Series) -> pd.Series:
    """Hourly, gap-free, non-negative: short gaps interpolated, the rest from the same hour a day or a week
    before (the mean where neither was seen)."""
    # An infinite sample is no load (a histogram quantile in its +Inf bucket): missing, like NaN. An hour seen
    # twice is its mean (a reindex refuses duplicate labels).
    series = series.astype(float).replace([math.inf, -math.inf], math.nan).dropna()
    series = series.groupby(level=0).mean().sort_index()
    if series.empty:
        return series
    full = pd.date_range(series.index[0], series.index[-1], freq="h")
    series = series.reindex(full)
    # Only gaps of up to 3 hours are interpolated: interpolate(limit=3) also filled the first 3 hours of a
    # longer gap, on a line towards its far end, and the rest of it from the day before.
    missing = series.isna()
    run = missing.groupby((~missing).cumsum()).transform("sum")
    series = series.interpolate(limit_area="inside").where(~missing | (run <= 3))
    series = series.fillna(series.shift(DAY)).fillna(series.shift(WEEK)).fillna(series.mean())
    return series.clip(lower=0)


def since_last_long_gap(series: pd.Series, *, longest: int = WEEK) -> pd.Series:
    """The observations after the last gap of more than `longest` hours. Filling a longer gap is invention:
    a lone burst weeks before (a load test, a retired service's slug reused) became weeks of its mean, and
    the plan followed that instead of the hours really seen."""
    observed = series.dropna().sort_index()
    if len(observed) < 2:  # no gap; and no history may come without a time index at all
        return observed
    gaps = observed.index.to_series().diff() > pd.Timedelta(hours=longest)
    return observed[observed.index >= gaps[gaps].index[-1]] if gaps.any() else observed


# --- patterns -------------------------------------------------------------------------------------


def _windows(hours: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of hours (wrapping midnight) as [start, end)."""
    chosen = set(hours)
    runs, seen = [], set()
    for hour in sorted(chosen):
        if hour in seen or ((hour - 1) % DAY in chosen and len(chosen) < DAY):
            continue
        end = hour
        while end % DAY in chosen and end % DAY not in seen:
            seen.add(end % DAY)
            end += 1
        runs.append((hour, end % DAY))
    return runs


def _calendar_name(start: int, end: int) -> str:
    hours = set(range(start, end if end > start else end + DAY))
    best, overlap = "", 0
    for name, (low, high) in CALENDAR.items():
        window = set(range(low, high if high > low else high + DAY))
        shared = len({h % DAY for h in hours} & {h % DAY for h in window})
        if shared > overlap:
            best, overlap = name, shared
    return best or "outside the clinical calendar"


def daily_peaks(profile: np.ndarray, *, prominence: float = 0.15) -> list[dict]:
    """Local maxima of the hour-of-day profile (relative to the mean), each with the hours around it above
    half its prominence, named after the clinical-calendar window its top falls in. Circular: a peak may
    cross midnight."""
    from scipy.signal import find_peaks, peak_widths

    tiled = np.tile(profile, 3)  # the middle copy sees its neighbours across midnight
    found, _ = find_peaks(tiled, prominence=prominence)
    middle = [index for index in found if DAY <= index < 2 * DAY]
    if not middle:
        return []
    _, _, lefts, rights = peak_widths(tiled, middle, rel_height=0.5)
    peaks = []
    for index, left, right in zip(middle, lefts, rights, strict=True):
        start, end = math.ceil(left) % DAY, (math.floor(right) + 1) % DAY
        peaks.append(
            {
                "hour": int(index % DAY),
                "start_hour": start,
                "end_hour": end,
                "name": _calendar_name(int(index % DAY), int(index % DAY) + 1),  # where its top falls
                "ratio_to_mean": round(float(tiled[index]), 2),
            }
        )
    return peaks


def analyze_patterns(series: pd.Series) -> dict:
    """Daily and weekly periods (autocorrelation), the named peaks and troughs, surges and the trend."""
    from statsmodels.tsa.stattools import acf

    series = regularize(series)
    values = series.to_numpy()
    result: dict = {"hours": len(values)}
    if len(values) < 2 * DAY:
        return result
    # A flat series has no variance to correlate (acf divides by it): no period, and no NaN to store.
    varies = bool(np.ptp(values) > 0)
    correlation = acf(values, nlags=min(len(values) - 1, WEEK + 1), fft=True) if varies else None
    threshold = 2 / math.sqrt(len(values))

    def period(lag: int) -> dict | None:
        if lag >= len(values):
            return None
        if correlation is None or not math.isfinite(correlation[lag]):
            return {"acf": None, "found": False}
        return {"acf": round(float(correlation[lag]), 3), "found": bool(correlation[lag] > max(threshold, 0.3))}

    result["periods"] = {"daily": period(DAY), "weekly": period(WEEK)}
    mean = values.mean() or 1.0
    profile = series.groupby(series.index.hour).mean() / mean
    result["hourly_profile"] = {int(hour): round(float(ratio), 3) for hour, ratio in profile.items()}
    result["peaks"] = daily_peaks(profile.reindex(range(DAY), fill_value=1.0).to_numpy())
    result["troughs"] = [
        {"start_hour": start, "end_hour": end, "name": _calendar_name(start, end)}
        for start, end in _windows([int(h) for h, r in profile.items() if r <= 0.85])
    ]
    weekdays = series.groupby(series.index.day_of_week).mean()
    if len(weekdays) == 7 and weekdays[:5].mean() > 0:
        result["weekend_ratio"] = round(float(weekdays[[5, 6]].mean() / weekdays[:5].mean()), 3)
    # Surges: hours far above what their hour of the week usually sees (emergencies, incidents).
    usual = series.groupby([series.index.day_of_week, series.index.hour]).transform("median")
    excess = series - usual
    mad = float(np.median(np.abs(excess - np.median(excess)))) or 1e-9
    surges = excess[excess > 5 * 1.4826 * mad].sort_values(ascending=False)
    result["surges"] = [
        {"at": at.isoformat(), "value": round(float(series[at]), 3), "usual": round(float(usual[at]), 3)}
        for at in surges.index[:10]
    ]
    days = np.arange(len(values)) / DAY
    slope = float(np.polyfit(days, values, 1)[0]) if len(values) >= WEEK else 0.0
    result["trend_pct_per_week"] = round(float(100 * slope * 7 / mean), 2)
    return result
