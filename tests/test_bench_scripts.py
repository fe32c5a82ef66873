"""Every bench the README cites starts as the README runs it (a fresh shell: no DJANGO_SETTINGS_MODULE)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHES = sorted(path for path in (REPO / "bench").glob("*.py") if path.name != "harness.py")


@pytest.mark.parametrize("script", BENCHES, ids=lambda path: path.name)
def test_a_bench_starts_and_explains_its_flags(script: Path):
    environment = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:")


def test_the_soak_refuses_nothing_to_do_before_it_starts_anything():
    """--patients 0 loaded nothing, started the servers and crashed drawing a patient from an empty list."""
    result = subprocess.run(
        [sys.executable, "bench/soak.py", "--patients", "0"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "--patients must be above 0" in result.stderr
