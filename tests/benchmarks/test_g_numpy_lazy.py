"""The benchmark modules the web and worker processes import at start-up do not import numpy (70-220 ms)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import django
django.setup()
import apps.benchmarks.admin, apps.benchmarks.analysis, apps.benchmarks.runner, apps.benchmarks.services
import apps.benchmarks.tasks, apps.benchmarks.report
print(sorted(name for name in sys.modules if name == "numpy" or name.startswith("numpy.")))
"""


def test_importing_the_benchmark_modules_leaves_numpy_unimported():
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "controlplane.settings"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_analysis_still_computes_with_numpy_imported_where_used():
    from apps.benchmarks import analysis

    samples = [[i / 10, 10.0 + i % 7, 10.0, 1, "card"] for i in range(200)]
    assert analysis.histogram_buckets(samples)
    assert analysis.noise_pct([10.0, 11.0, 12.0]) > 0
    assert analysis.endurance_slope(samples, window_seconds=5)
