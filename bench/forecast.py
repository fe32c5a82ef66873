"""Workload forecasts: accuracy and band calibration, each model against the seasonal naive in the same run.

Two series, day-ahead forecasts from rolling origins (one per day, the last FOLDS days):
  * real: Taylor's half-hourly electricity demand (England and Wales, 2000; shipped inside the
    `pmdarima` package), summed to hours: 2,016 hours with daily and weekly seasons;
  * synthetic hospital traffic (apps/scaling/synthetic.py): rounds, nights, weekends, holidays,
    emergency surges, 28 days, four seeds (the surges fall differently in each).
For every candidate (seasonal naive m=24 and m=168, Holt-Winters, quantile gradient boosting): MASE
against the in-sample seasonal naive (m=24 and m=168; below 1 beats it), sMAPE, the share of actuals
inside the P10-P90 band (nominal 80%), and its MAE as a ratio of the weekly naive's in the same folds.
Goals (issue #9): the chosen model's MASE < 0.8 and coverage 75-85%. For the synthetic series the
oracle (the generator's own expected load, without its noise and surges) is scored in the same folds:
the floor no forecaster without foreknowledge of emergencies gets under.

Run:  .venv/bin/python bench/forecast.py [--folds 7]
Prints JSON on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import emit, progress

from apps.scaling import forecasting
from apps.scaling.synthetic import expected_request_rate, hospital_traffic

SEEDS = ("a", "b", "c", "d")


def taylor() -> pd.Series:
    from pmdarima.datasets import load_taylor

    half_hours = load_taylor(as_series=True).to_numpy()
    hours = half_hours.reshape(-1, 2).sum(axis=1)
    return pd.Series(hours, index=pd.date_range("2000-06-05", periods=len(hours), freq="h", tz="UTC"))


def mae_of(model, series: pd.Series, folds: int) -> float:
    errors = []
    for fold in range(folds, 0, -1):
        cut = len(series) - fold * forecasting.DAY
        test = series.iloc[cut : cut + forecasting.DAY].to_numpy()
        errors.append(np.abs(test - model.fit_predict(series.iloc[:cut], len(test)).p50))
    return float(np.mean(np.concatenate(errors)))


def oracle_mase(series: pd.Series, expected: np.ndarray, folds: int) -> dict:
    """MASE of the generator's own expected load (no noise, no surges) in the same folds: the floor a
    forecaster without foreknowledge of emergencies can reach on this series."""
    scores = {"mase_24": [], "mase_168": []}
    values = series.to_numpy()
    for fold in range(folds, 0, -1):
        cut = len(series) - fold * forecasting.DAY
        actual, predicted = values[cut : cut + forecasting.DAY], expected[cut : cut + forecasting.DAY]
        for key, period in (("mase_24", forecasting.DAY), ("mase_168", forecasting.WEEK)):
            scores[key].append(forecasting.mase(actual, predicted, values[:cut], period))
    return {key: round(float(np.mean(v)), 4) for key, v in scores.items()}


def evaluate(name: str, series: pd.Series, folds: int, expected: np.ndarray | None = None) -> dict:
    started = time.perf_counter()
    models = forecasting.candidates(len(series))
    baseline = mae_of(forecasting.SeasonalNaive(forecasting.WEEK), series, folds)
    rows = {}
    for model in models:
        progress(f"{name}: {model.name}, {folds} day-ahead folds")
        score = forecasting.backtest(model, series, folds=folds).as_dict()
        score["mae_vs_weekly_naive"] = round(mae_of(model, series, folds) / baseline, 4)
        rows[model.name] = score
    criterion = "mase_168" if all(r["mase_168"] is not None for r in rows.values()) else "mase_24"
    chosen = min(rows.values(), key=lambda r: r[criterion])
    oracle = oracle_mase(series, expected, folds) if expected is not None else None
    return {
        **(
            {"oracle_mase": oracle[criterion], "chosen_over_oracle": round(chosen[criterion] / oracle[criterion], 3)}
            if oracle
            else {}
        ),
        "hours": len(series),
        "folds": folds,
        "criterion": criterion,
        "chosen": chosen["model"],
        "chosen_mase": chosen[criterion],
        "chosen_coverage_p10_p90": chosen["coverage"],
        "goal_mase_below_0_8": chosen[criterion] < 0.8,
        "goal_coverage_75_85": 0.75 <= chosen["coverage"] <= 0.85,
        "candidates": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=7)
    args = parser.parse_args()
    if args.folds < 1:  # no fold: numpy's "need at least one array to concatenate", after loading the data
        parser.error("--folds must be at least 1")
    figures = {"taylor_electricity_hourly": evaluate("taylor", taylor(), args.folds)}
    hospitals = {}
    for seed in SEEDS:
        traffic = hospital_traffic(end=pd.Timestamp("2026-11-23", tz="UTC"), hours=28 * 24, seed=seed)
        expected = expected_request_rate(traffic.index)
        hospitals[seed] = evaluate(f"hospital {seed}", traffic["request_rate"], args.folds, expected)
    figures["synthetic_hospital_request_rate"] = {
        "seeds": hospitals,
        "mean_chosen_mase": round(float(np.mean([h["chosen_mase"] for h in hospitals.values()])), 4),
        "mean_oracle_mase": round(float(np.mean([h["oracle_mase"] for h in hospitals.values()])), 4),
        "mean_chosen_coverage_p10_p90": round(
            float(np.mean([h["chosen_coverage_p10_p90"] for h in hospitals.values()])), 4
        ),
        "mean_mae_vs_weekly_naive": round(
            float(np.mean([h["candidates"][h["chosen"]]["mae_vs_weekly_naive"] for h in hospitals.values()])), 4
        ),
    }
    emit(figures)


if __name__ == "__main__":
    main()
