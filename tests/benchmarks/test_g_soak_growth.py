"""bench/soak.py reports the worker memory growth it measured, and a rate per hour (with its 95% confidence
interval) only from 10 minutes of samples after the warm-up on: a slope fitted over a minute and multiplied to
an hour reported a 3 MB step as tens of MB per hour."""

import json
import subprocess
import sys

from tests.helpers import REPO_ROOT


def _growth(samples: list[tuple[float, float]]) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import soak; "
        f"print(json.dumps(soak.memory_growth({samples!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_short_soak_reports_the_growth_it_measured_and_no_hourly_rate():
    # Two minutes after the warm-up, one 3 MB step: 3 MB measured, no "+90 MB per hour".
    samples = [(t, 100.0 if t < 120 else 103.0) for t in range(0, 190, 10)]
    growth = _growth(samples)
    assert growth["growth_mb"] == 3.0 and growth["measured_seconds"] == 120.0
    assert growth["after_warmup_mb"] == 100.0 and growth["end_mb"] == 103.0
    assert growth["growth_mb_per_hour"] is None and growth["growth_mb_per_hour_ci95"] is None


def test_from_ten_minutes_of_data_on_the_hourly_rate_comes_with_its_confidence_interval():
    # 12 MB per hour with a +-0.2 MB wobble, 20 minutes after the warm-up.
    samples = [(t, 100.0 + t * 12 / 3600 + (0.2 if (t // 10) % 2 else -0.2)) for t in range(0, 1270, 10)]
    growth = _growth(samples)
    low, high = growth["growth_mb_per_hour_ci95"]
    assert low < growth["growth_mb_per_hour"] < high
    assert low < 12 < high and high - low < 6
    assert growth["measured_seconds"] == 1200.0
