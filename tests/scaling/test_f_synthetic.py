"""Synthetic hospital traffic: a stable history, whatever window reads it."""

import numpy as np
import pandas as pd
import pytest

from apps.scaling.synthetic import expected_request_rate, hospital_traffic

END = pd.Timestamp("2026-11-23", tz="UTC")


@pytest.mark.parametrize("later", [1, 5, 24])
def test_an_hour_reads_the_same_in_every_window_that_holds_it(later):
    # Drawn in sequence over the window, every hour changed when the window moved on an hour: yesterday's
    # forecast was laid over actuals that were not the ones it was made from.
    earlier = hospital_traffic(end=END, hours=28 * 24, seed="demo", time_zone="America/New_York")
    moved = hospital_traffic(
        end=END + pd.Timedelta(hours=later), hours=28 * 24, seed="demo", time_zone="America/New_York"
    )
    shared = earlier.index.intersection(moved.index)
    assert len(shared) == 28 * 24 - later
    # Up to the generator's slow trend (1% a week from the window's start; the response time goes with the
    # load's cube). Redrawn, they differed by 8% and more.
    trend = 0.01 * later / 168
    assert np.allclose(earlier.loc[shared, "request_rate"], moved.loc[shared, "request_rate"], rtol=trend * 1.001)
    assert np.allclose(earlier.loc[shared], moved.loc[shared], rtol=3 * trend * 1.001)


def test_the_same_input_gives_the_same_traffic_and_another_seed_other_traffic():
    first = hospital_traffic(end=END, hours=200, seed="a")
    assert first.equals(hospital_traffic(end=END, hours=200, seed="a"))
    assert not np.allclose(first, hospital_traffic(end=END, hours=200, seed="b"))


def test_the_noise_and_surges_are_what_the_generator_says():
    traffic = hospital_traffic(end=END, hours=52 * 168, seed="stats")
    ratio = (traffic["request_rate"] / expected_request_rate(traffic.index)).to_numpy()
    surged = ratio > 1.5
    calm = np.log(ratio[~surged])
    assert abs(np.std(calm) - 0.08) < 0.005 and abs(np.mean(calm)) < 0.005  # lognormal(0, 0.08)
    # 0.7 surges a week of 2-4 hours: 52 weeks hold about 109 surge hours.
    assert 60 <= surged.sum() <= 170
    assert 1.6 < np.median(ratio[surged]) < 2.8
    assert traffic["cpu"].between(0, 100).all() and traffic["memory"].between(0, 100).all()
    assert (traffic["response_time"] > 60).all()
