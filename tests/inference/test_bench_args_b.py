"""bench/inference.py --requests 0 (or --clients, --rounds, --long-tokens 0) measured nothing: it loaded and ran
the models for minutes, then crashed on a median of no latencies (StatisticsError). It now refuses the flag
before it starts anything (argparse's exit status 2). The database URL is unreachable: the old bench failed
there at once (another error) instead of running the models."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("flag", ["--requests", "--clients", "--rounds", "--long-tokens"])
def test_the_inference_bench_refuses_nothing_to_measure_before_it_starts(flag):
    result = subprocess.run(
        [sys.executable, "bench/inference.py", flag, "0", "--database-url", "postgres://nobody@127.0.0.1:1/none"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{flag} must be above 0" in result.stderr
