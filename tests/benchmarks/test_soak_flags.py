"""`bench/soak.py --minutes nan` (or --rate inf) passed its "above 0" check (NaN compares false with
everything), then started servers for a soak that could never end or measure anything. A number that is not
finite is refused like one at or below 0, before anything starts."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import closed_port

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--minutes", "nan"), ("--minutes", "inf"), ("--rate", "inf"), ("--rate", "nan"), ("--minutes", "-inf")],
)
def test_a_soak_length_or_rate_that_is_not_a_finite_number_is_refused(flag, value):
    # Nowhere to reach: if the flag were let through, the soak would stop at its database, not soak.
    nowhere = [
        "--database", f"postgres://postgres@127.0.0.1:{closed_port()}/none",
        "--redis", f"redis://127.0.0.1:{closed_port()}/0",
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "bench/soak.py", f"{flag}={value}", *nowhere],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{flag} must be a finite number above 0" in result.stderr
