"""`bench/forecast.py --folds 0` (or below) loaded the data and died in numpy ("need at least one array to
concatenate"); it is refused with the flag named, exit status 2, before any work."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("folds", ["0", "-3"])
def test_folds_below_one_are_refused_before_any_work(folds):
    result = subprocess.run(
        [sys.executable, "bench/forecast.py", "--folds", folds], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2 and "--folds must be at least 1" in result.stderr, result.stderr[-2000:]
